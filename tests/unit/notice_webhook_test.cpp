// NoticeWebhook against a real (tiny) HTTP server on localhost: the POST
// body and bearer token, retries with backoff after errors, the newest
// revision winning, giving up after the configured attempts, and the token
// file check shared with the controller link.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "hostmaint/agent/controller/http_client.hpp"
#include "hostmaint/agent/service/notice_board.hpp"
#include "support/fake_clock.hpp"

using namespace std::chrono_literals;

namespace hostmaint::service {
namespace {

// Accepts connections one at a time; answers each request with the next
// status in `statuses` (200 once they run out) and records it.
class TinyHttpServer {
 public:
  struct Request {
    std::string head;
    std::string body;
  };

  explicit TinyHttpServer(std::deque<int> statuses) : statuses_(std::move(statuses)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    socklen_t length = sizeof address;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    EXPECT_EQ(::listen(fd_, 8), 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~TinyHttpServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  std::vector<Request> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  void serve() {
    while (!stop_) {
      const int client = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) return;
      std::string data;
      char buffer[4096];
      std::size_t need = std::string::npos;
      while (need == std::string::npos || data.size() < need) {
        const ssize_t n = ::read(client, buffer, sizeof buffer);
        if (n <= 0) break;
        data.append(buffer, static_cast<std::size_t>(n));
        const auto end = data.find("\r\n\r\n");
        if (need == std::string::npos && end != std::string::npos) {
          const auto at = data.find("Content-Length: ");
          const std::size_t length =
              at == std::string::npos ? 0 : std::stoul(data.substr(at + 16));
          need = end + 4 + length;
        }
      }
      int status = 200;
      {
        std::lock_guard lock(mutex_);
        const auto end = data.find("\r\n\r\n");
        requests_.push_back({data.substr(0, end), end == std::string::npos ? "" : data.substr(end + 4)});
        if (!statuses_.empty()) {
          status = statuses_.front();
          statuses_.pop_front();
        }
      }
      const std::string answer = "HTTP/1.1 " + std::to_string(status) +
                                 " X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      (void)!::write(client, answer.data(), answer.size());
      ::close(client);
    }
  }

  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::deque<int> statuses_;
  std::vector<Request> requests_;
  std::thread thread_;
};

class NoticeWebhookTest : public ::testing::Test {
 protected:
  agent::NoticesConfig config(const std::string& url) {
    agent::NoticesConfig c;
    c.webhook_url = url;
    c.webhook_attempts = 3;
    c.webhook_retry_min = 20ms;
    c.webhook_retry_max = 40ms;
    c.webhook_connect_timeout = 2s;
    c.webhook_timeout = 5s;
    return c;
  }

  // Runs the loop until `done` holds for the last health report, or 10 s.
  bool runUntil(const std::function<bool(const agent::NoticeWebhookHealth&)>& done) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      io.restart();
      io.run_for(20ms);
      if (health && done(*health)) return true;
    }
    return false;
  }

  std::function<void(const agent::NoticeWebhookHealth&)> record() {
    return [this](const agent::NoticeWebhookHealth& h) { health = h; };
  }

  nlohmann::json body(std::uint64_t revision) {
    agent::NoticeLedger::Issued issued;
    issued.uuid = "6695eb01-f6a4-8304-79aa-97f2502e193f";
    issued.name = "web1";
    issued.notice.revision = revision;
    issued.notice.action = agent::MaintenanceAction::suspend;
    return webhookBody("hv-test", issued);
  }

  boost::asio::io_context io;
  fake::FakeClock clock;
  std::optional<agent::NoticeWebhookHealth> health;
};

TEST_F(NoticeWebhookTest, PostsTheNoticeAsJsonAndRetriesAfterAnError) {
  TinyHttpServer server({503});
  NoticeWebhook webhook(io, config(server.url()), clock, record());
  webhook.enqueue("6695eb01-f6a4-8304-79aa-97f2502e193f", 7, body(7));
  ASSERT_TRUE(runUntil([](const auto& h) { return h.delivered == 1; }));
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u) << "one 503, then the retry";
  EXPECT_NE(requests[1].head.find("POST /hook"), std::string::npos);
  EXPECT_NE(requests[1].head.find("Content-Type: application/json"), std::string::npos);
  const auto sent = nlohmann::json::parse(requests[1].body);
  EXPECT_EQ(sent.at("type"), "hostmaint.notice");
  EXPECT_EQ(sent.at("host"), "hv-test");
  EXPECT_EQ(sent.at("domain").at("name"), "web1");
  EXPECT_EQ(sent.at("notice").at("revision"), 7);
  EXPECT_EQ(sent.at("notice").at("action"), "suspend");
  EXPECT_EQ(health->consecutive_failures, 0);
  EXPECT_EQ(health->pending, 0u);
  ASSERT_TRUE(health->last_error);
  EXPECT_NE(health->last_error->find("503"), std::string::npos) << *health->last_error;
}

TEST_F(NoticeWebhookTest, GivesUpAfterTheConfiguredAttemptsVisibly) {
  TinyHttpServer server({500, 500, 500, 500});
  NoticeWebhook webhook(io, config(server.url()), clock, record());
  webhook.enqueue("u1", 1, body(1));
  ASSERT_TRUE(runUntil([](const auto& h) { return h.dropped == 1; }));
  EXPECT_EQ(server.requests().size(), 3u);
  EXPECT_EQ(health->consecutive_failures, 3);
  EXPECT_EQ(health->delivered, 0u);
  EXPECT_EQ(health->pending, 0u);
  EXPECT_TRUE(health->last_failure.has_value());
}

TEST_F(NoticeWebhookTest, UnreachableWebhookIsAFailureNotAHang) {
  // A port nobody listens on: connection refused at once.
  const int probe = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(probe, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(probe, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(probe);
  NoticeWebhook webhook(
      io, config("http://127.0.0.1:" + std::to_string(ntohs(address.sin_port)) + "/"), clock,
      record());
  webhook.enqueue("u1", 1, body(1));
  ASSERT_TRUE(runUntil([](const auto& h) { return h.consecutive_failures >= 1; }));
  EXPECT_NE(health->last_error->find("notice revision 1 for domain u1"), std::string::npos)
      << *health->last_error;
}

TEST_F(NoticeWebhookTest, SendsTheBearerTokenFromAPrivateFile) {
  const auto dir = std::filesystem::temp_directory_path() / ("webhook-token-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto token = dir / "token";
  std::ofstream(token) << "s3cret\n";
  ::chmod(token.c_str(), 0600);
  TinyHttpServer server({});
  auto c = config(server.url());
  c.webhook_token_file = token;
  {
    NoticeWebhook webhook(io, c, clock, record());
    webhook.enqueue("u1", 1, body(1));
    ASSERT_TRUE(runUntil([](const auto& h) { return h.delivered == 1; }));
  }
  EXPECT_NE(server.requests().at(0).head.find("Authorization: Bearer s3cret"), std::string::npos);

  ::chmod(token.c_str(), 0644);
  try {
    NoticeWebhook refused(io, c, clock, record());
    ADD_FAILURE() << "a world-readable token file was accepted";
  } catch (const agent::controller::TokenFileError& error) {
    EXPECT_NE(std::string(error.what()).find("must not be accessible by group or others"),
              std::string::npos)
        << error.what();
  }
  std::filesystem::remove_all(dir);
}

TEST(NoticeWebhookRetry, DelayDoublesFromTheMinimumUpToTheMaximum) {
  EXPECT_EQ(webhookRetryDelay(2, 2s, 5min), 2s);
  EXPECT_EQ(webhookRetryDelay(3, 2s, 5min), 4s);
  EXPECT_EQ(webhookRetryDelay(4, 2s, 5min), 8s);
  EXPECT_EQ(webhookRetryDelay(30, 2s, 5min), 5min);
  EXPECT_EQ(webhookRetryDelay(5, 2s, 3s), 3s);
}

}  // namespace
}  // namespace hostmaint::service
