// The controller client against a real HTTP server: Debian's nginx playing
// the controller (static desired-state file with ETags, DAV PUT for the
// status), over plain HTTP, TLS with a test CA made by openssl at test time,
// and mTLS with client certificates required. Config templates and the CA
// script: tests/integration/controller/. Skipped only when nginx or openssl
// is not installed (scripts/deps installs both).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "hostmaint/agent/controller/controller_client.hpp"
#include "hostmaint/agent/controller/http_client.hpp"

namespace hostmaint::agent::controller {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

const std::filesystem::path kTemplates =
    std::filesystem::path(HOSTMAINT_SOURCE_DIR) / "tests/integration/controller";
constexpr const char* kHost = "host-a";
constexpr const char* kToken = "test-token-8f2c";

std::optional<std::filesystem::path> findProgram(const std::string& name) {
  std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
  path += ":/usr/sbin:/sbin";
  std::istringstream dirs(path);
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const auto candidate = std::filesystem::path(dir) / name;
    if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

void writeFile(const std::filesystem::path& path, const std::string& content) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

void replaceAll(std::string& text, const std::string& from, const std::string& to) {
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

// A TCP socket on 127.0.0.1 with a kernel-chosen port.
class LoopbackSocket {
 public:
  LoopbackSocket() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      throw std::runtime_error("cannot bind a loopback socket");
    }
    socklen_t length = sizeof address;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
  }
  ~LoopbackSocket() { ::close(fd_); }
  LoopbackSocket(const LoopbackSocket&) = delete;
  LoopbackSocket& operator=(const LoopbackSocket&) = delete;

  void listen() { ::listen(fd_, 8); }
  int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
};

bool acceptsConnections(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return ok;
}

// nginx in the foreground under a private prefix; stopped (SIGQUIT, then
// reaped) when destroyed.
class NginxController {
 public:
  NginxController(const std::filesystem::path& nginx, std::filesystem::path prefix)
      : prefix_(std::move(prefix)) {
    for (const char* dir : {"tmp", "www", "pki"}) std::filesystem::create_directories(prefix_ / dir);
    const std::string script = (kTemplates / "make-test-ca.sh").string();
    const std::string command =
        "sh '" + script + "' '" + (prefix_ / "pki").string() + "' >'" +
        (prefix_ / "pki.log").string() + "' 2>&1";
    if (std::system(command.c_str()) != 0) {
      throw std::runtime_error("make-test-ca.sh failed: " + readFile(prefix_ / "pki.log"));
    }
    {
      // Ports are picked by binding port 0, then released for nginx: a small
      // race with other processes, answered by the readiness check below.
      LoopbackSocket plain, tls, mtls;
      plain_port_ = plain.port();
      tls_port_ = tls.port();
      mtls_port_ = mtls.port();
    }
    auto fill = [&](std::string text) {
      replaceAll(text, "@PREFIX@", prefix_.string());
      replaceAll(text, "@PLAIN_PORT@", std::to_string(plain_port_));
      replaceAll(text, "@TLS_PORT@", std::to_string(tls_port_));
      replaceAll(text, "@MTLS_PORT@", std::to_string(mtls_port_));
      replaceAll(text, "@TOKEN@", kToken);
      // As root, workers would switch to nobody, who cannot read our 0700 dir.
      replaceAll(text, "@USER@", ::geteuid() == 0 ? "user root;" : "");
      return text;
    };
    writeFile(prefix_ / "nginx.conf", fill(readFile(kTemplates / "nginx.conf.in")));
    writeFile(prefix_ / "locations.conf", fill(readFile(kTemplates / "locations.conf.in")));

    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      const int log = ::open((prefix_ / "nginx.out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(log, 1);
      ::dup2(log, 2);
      const std::string prefix_arg = prefix_.string() + "/";
      const std::string conf = (prefix_ / "nginx.conf").string();
      const std::string error_log = (prefix_ / "error.log").string();
      ::execl(nginx.c_str(), "nginx", "-p", prefix_arg.c_str(), "-c", conf.c_str(), "-e",
              error_log.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // Ready when all three ports accept; give up after 10 s or if it exits.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!(acceptsConnections(plain_port_) && acceptsConnections(tls_port_) &&
             acceptsConnections(mtls_port_))) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("nginx exited during start: " + readFile(prefix_ / "nginx.out") +
                                 readFile(prefix_ / "error.log"));
      }
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("nginx did not listen within 10 s: " +
                                 readFile(prefix_ / "error.log"));
      }
      std::this_thread::sleep_for(10ms);
    }
  }

  ~NginxController() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  NginxController(const NginxController&) = delete;
  NginxController& operator=(const NginxController&) = delete;

  std::string plainBase() const { return "http://127.0.0.1:" + std::to_string(plain_port_); }
  std::string tlsBase() const { return "https://127.0.0.1:" + std::to_string(tls_port_); }
  std::string mtlsBase() const { return "https://127.0.0.1:" + std::to_string(mtls_port_); }
  std::filesystem::path www() const { return prefix_ / "www"; }
  std::filesystem::path pki(const std::string& file) const { return prefix_ / "pki" / file; }
  // nginx logs a request after it has sent the response, so the line may
  // trail the client's return: wait for it (bounded).
  bool waitForAccessLog(const std::string& line) const {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (readFile(prefix_ / "access.log").find(line) == std::string::npos) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }

  void setDesiredState(const std::string& body, const std::string& under = "") {
    writeFile(www() / under / "v1/hosts" / kHost / "maintenance", body);
  }

 private:
  std::filesystem::path prefix_;
  int plain_port_ = 0, tls_port_ = 0, mtls_port_ = 0;
  pid_t pid_ = -1;
};

const std::string kScheduled = R"({
  "session_id": "mw-7",
  "state": "scheduled",
  "window": {"start": "2026-11-25T04:00:00Z", "end": "2026-11-25T08:00:00Z"},
  "removal": false,
  "reason": "firmware",
  "destinations": ["host-b"],
  "acks": {"web1": "move"}
})";

class ControllerHttpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto nginx = findProgram("nginx");
    if (!nginx || !findProgram("openssl")) {
      const std::string why = "nginx or openssl is not installed (scripts/deps installs them)";
      // CI (HOSTMAINT_REQUIRE_TOOLS=1) ran scripts/deps: a missing tool is a failure there.
      const char* require = std::getenv("HOSTMAINT_REQUIRE_TOOLS");
      if (require && std::string(require) == "1") {
        setup_error_ = new std::string(why + "; missing with HOSTMAINT_REQUIRE_TOOLS=1");
      } else {
        skip_reason_ = new std::string(why);
      }
      return;
    }
    std::string pattern =
        (std::filesystem::temp_directory_path() / "controller-http-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    prefix_ = new std::filesystem::path(pattern);
    try {
      controller_ = new NginxController(*nginx, *prefix_);
    } catch (const std::runtime_error& error) {
      setup_error_ = new std::string(error.what());
    }
  }

  static void TearDownTestSuite() {
    delete controller_;
    controller_ = nullptr;
    if (prefix_) std::filesystem::remove_all(*prefix_);
    delete prefix_;
    prefix_ = nullptr;
    delete skip_reason_;
    skip_reason_ = nullptr;
    delete setup_error_;
    setup_error_ = nullptr;
  }

  void SetUp() override {
    if (skip_reason_) GTEST_SKIP() << *skip_reason_;
    if (setup_error_) FAIL() << "cannot start nginx as the controller: " << *setup_error_;
    controller_->setDesiredState(kScheduled);
  }

  static HttpClientOptions tlsOptions() {
    HttpClientOptions options;
    options.ca_file = controller_->pki("ca.crt");
    options.request_timeout = 10s;
    return options;
  }

  // Runs `request`, returns the HttpError it throws.
  template <typename Request>
  static HttpError failureOf(Request request) {
    try {
      request();
    } catch (const HttpError& error) {
      return error;
    }
    ADD_FAILURE() << "request succeeded";
    return HttpError(HttpFailure::setup, "", 0, "no error");
  }

  static inline NginxController* controller_ = nullptr;
  static inline std::filesystem::path* prefix_ = nullptr;
  static inline std::string* skip_reason_ = nullptr;
  static inline std::string* setup_error_ = nullptr;
};

TEST_F(ControllerHttpTest, GetsTheDesiredStateThenNotModifiedWithItsEtag) {
  ControllerClient client(controller_->plainBase(), kHost, HttpClient({}));
  const auto first = client.fetchDesiredState(std::nullopt);
  ASSERT_FALSE(first.not_modified);
  ASSERT_TRUE(first.desired);
  EXPECT_EQ(first.desired->session_id, "mw-7");
  EXPECT_EQ(first.desired->state, SessionState::scheduled);
  ASSERT_TRUE(first.etag);
  EXPECT_THAT(*first.etag, ::testing::StartsWith("\""));

  const auto second = client.fetchDesiredState(first.etag);
  EXPECT_TRUE(second.not_modified);
  EXPECT_FALSE(second.desired);
  EXPECT_EQ(second.etag, first.etag);
  EXPECT_TRUE(controller_->waitForAccessLog("GET /v1/hosts/host-a/maintenance 304 prefer=\"\" inm=\"" +
                                            *first.etag + "\""));

  // The controller changes its mind: the file changes, so does the ETag.
  controller_->setDesiredState(R"({"state": "cancelled", "session_id": "mw-7", "pad": "xx"})");
  const auto third = client.fetchDesiredState(first.etag);
  ASSERT_FALSE(third.not_modified);
  EXPECT_EQ(third.desired->state, SessionState::cancelled);
  EXPECT_NE(third.etag, first.etag);
}

TEST_F(ControllerHttpTest, SendsTheLongPollHint) {
  ControllerClient client(controller_->plainBase(), kHost, HttpClient({}));
  client.fetchDesiredState(std::nullopt, 25s);
  EXPECT_TRUE(
      controller_->waitForAccessLog("GET /v1/hosts/host-a/maintenance 200 prefer=\"wait=25\""));
}

TEST_F(ControllerHttpTest, PutStatusLandsOnDisk) {
  ControllerClient client(controller_->plainBase(), kHost, HttpClient({}));
  const std::string body = R"({"phase":"draining","report_seq":1})";
  client.putStatus(body);
  EXPECT_EQ(readFile(controller_->www() / "v1/hosts/host-a/status"), body);
  // The second report overwrites (nginx answers 204 instead of 201).
  const std::string newer = R"({"phase":"empty","report_seq":2})";
  client.putStatus(newer);
  EXPECT_EQ(readFile(controller_->www() / "v1/hosts/host-a/status"), newer);
}

TEST_F(ControllerHttpTest, StatusReporterDeliversThroughTheRealClient) {
  ControllerClient client(controller_->plainBase(), kHost, HttpClient({}));
  StatusReporter reporter(client, 41);
  reporter.offer({{"phase", "scheduled"}});
  EXPECT_EQ(reporter.deliver().outcome, StatusReporter::Outcome::delivered);
  const auto stored = nlohmann::json::parse(readFile(controller_->www() / "v1/hosts/host-a/status"));
  EXPECT_EQ(stored["report_seq"], 41);
  EXPECT_EQ(stored["phase"], "scheduled");
}

TEST_F(ControllerHttpTest, TlsWithTheTestCaWorks) {
  ControllerClient client(controller_->tlsBase(), kHost, HttpClient(tlsOptions()));
  const auto fetch = client.fetchDesiredState(std::nullopt);
  ASSERT_TRUE(fetch.desired);
  EXPECT_EQ(fetch.desired->session_id, "mw-7");
  client.putStatus(R"({"phase":"idle"})");
}

TEST_F(ControllerHttpTest, TlsVerificationIsOnByDefault) {
  HttpClientOptions options;  // no CA: the system store does not know the test CA
  ControllerClient client(controller_->tlsBase(), kHost, HttpClient(options));
  const HttpError error = failureOf([&] { client.fetchDesiredState(std::nullopt); });
  EXPECT_EQ(error.failure(), HttpFailure::tls);
  EXPECT_EQ(error.url(), client.maintenanceUrl());
  EXPECT_THAT(error.what(), HasSubstr("GET " + client.maintenanceUrl() + ": SSL certificate problem"));
  EXPECT_THAT(error.what(), HasSubstr("(curl error 60)"));
}

TEST_F(ControllerHttpTest, TlsRefusesAServerSignedByAnotherCa) {
  HttpClientOptions options = tlsOptions();
  options.ca_file = controller_->pki("other-ca.crt");
  ControllerClient client(controller_->tlsBase(), kHost, HttpClient(options));
  EXPECT_EQ(failureOf([&] { client.fetchDesiredState(std::nullopt); }).failure(), HttpFailure::tls);
}

TEST_F(ControllerHttpTest, MutualTlsNeedsTheClientCertificate) {
  ControllerClient anonymous(controller_->mtlsBase(), kHost, HttpClient(tlsOptions()));
  const HttpError error = failureOf([&] { anonymous.fetchDesiredState(std::nullopt); });
  // nginx completes the handshake and answers 400 "No required SSL
  // certificate was sent"; either way the agent gets no desired state.
  EXPECT_EQ(error.failure(), HttpFailure::http_status);
  EXPECT_EQ(error.httpStatus(), 400);
  EXPECT_THAT(error.what(), HasSubstr("GET " + anonymous.maintenanceUrl() + ": HTTP status 400"));

  HttpClientOptions options = tlsOptions();
  options.client_cert = controller_->pki("client.crt");
  options.client_key = controller_->pki("client.key");
  ControllerClient authenticated(controller_->mtlsBase(), kHost, HttpClient(options));
  const auto fetch = authenticated.fetchDesiredState(std::nullopt);
  ASSERT_TRUE(fetch.desired);
  EXPECT_EQ(fetch.desired->session_id, "mw-7");
  authenticated.putStatus(R"({"phase":"idle"})");
}

TEST_F(ControllerHttpTest, MutualTlsNamesAnUnreadableClientKey) {
  HttpClientOptions options = tlsOptions();
  options.client_cert = controller_->pki("client.crt");
  options.client_key = controller_->pki("absent.key");
  ControllerClient client(controller_->mtlsBase(), kHost, HttpClient(options));
  const HttpError error = failureOf([&] { client.fetchDesiredState(std::nullopt); });
  EXPECT_EQ(error.failure(), HttpFailure::tls);
  EXPECT_THAT(error.what(), HasSubstr("absent.key"));
}

TEST_F(ControllerHttpTest, SendsTheBearerToken) {
  controller_->setDesiredState(kScheduled, "auth");
  ControllerClient without(controller_->tlsBase() + "/auth", kHost, HttpClient(tlsOptions()));
  const HttpError error = failureOf([&] { without.fetchDesiredState(std::nullopt); });
  EXPECT_EQ(error.httpStatus(), 401);
  EXPECT_THAT(error.what(), HasSubstr("HTTP status 401: {\"error\": \"missing or wrong bearer token\"}"));

  HttpClientOptions options = tlsOptions();
  options.bearer_token = kToken;
  ControllerClient with(controller_->tlsBase() + "/auth", kHost, HttpClient(options));
  EXPECT_TRUE(with.fetchDesiredState(std::nullopt).desired);
}

TEST_F(ControllerHttpTest, HttpErrorsCarryUrlStatusAndBody) {
  ControllerClient client(controller_->plainBase() + "/overloaded", kHost, HttpClient({}));
  const HttpError error = failureOf([&] { client.fetchDesiredState(std::nullopt); });
  EXPECT_EQ(error.failure(), HttpFailure::http_status);
  EXPECT_EQ(error.httpStatus(), 503);
  EXPECT_EQ(error.url(), client.maintenanceUrl());
  EXPECT_THAT(error.what(), HasSubstr("GET " + client.maintenanceUrl() + ": HTTP status 503: "
                                      "{\"error\": \"controller overloaded, try later\"}"));
  const HttpError put_error = failureOf([&] { client.putStatus("{}"); });
  EXPECT_EQ(put_error.httpStatus(), 503);
  EXPECT_THAT(put_error.what(), HasSubstr("PUT " + client.statusUrl()));
}

TEST_F(ControllerHttpTest, GarbageIsAProtocolErrorNamingTheUrl) {
  controller_->setDesiredState("<html><body>502 Bad Gateway</body></html>");
  ControllerClient client(controller_->plainBase(), kHost, HttpClient({}));
  try {
    client.fetchDesiredState(std::nullopt);
    FAIL() << "garbage accepted";
  } catch (const ProtocolError& error) {
    EXPECT_THAT(error.what(), HasSubstr("desired state: not valid JSON"));
    EXPECT_THAT(error.what(), HasSubstr("(from " + client.maintenanceUrl() + ")"));
  }
}

TEST_F(ControllerHttpTest, RefusesAResponseAnnouncedLargerThanTheLimit) {
  controller_->setDesiredState(std::string(64 * 1024, ' ') + kScheduled);
  HttpClientOptions options;
  options.max_response_bytes = 4096;
  ControllerClient client(controller_->plainBase(), kHost, HttpClient(options));
  const HttpError error = failureOf([&] { client.fetchDesiredState(std::nullopt); });
  EXPECT_EQ(error.failure(), HttpFailure::too_large);
  EXPECT_THAT(error.what(), HasSubstr("response from " + client.maintenanceUrl() +
                                      " exceeds the 4096 byte limit"));
}

TEST_F(ControllerHttpTest, RefusesAStreamedResponseOnceItPassesTheLimit) {
  const std::string url = controller_->plainBase() + "/chunked/big";
  writeFile(controller_->www() / "chunked/big", std::string(256 * 1024, 'x'));
  HttpClientOptions options;
  options.max_response_bytes = 4096;
  HttpClient client(options);
  const HttpError error = failureOf([&] { client.get(url); });
  EXPECT_EQ(error.failure(), HttpFailure::too_large);
  EXPECT_THAT(error.what(), HasSubstr("response from " + url + " exceeds the 4096 byte limit"));
  // Below the limit the same location works, proving the limit is what refused.
  writeFile(controller_->www() / "chunked/small", "xxxx");
  EXPECT_EQ(client.get(controller_->plainBase() + "/chunked/small").body, "yyyy");
}

TEST_F(ControllerHttpTest, TotalTimeoutCutsOffASilentServer) {
  // Listening but never accepting: the kernel completes the handshake, the
  // request is sent, and no answer ever comes.
  LoopbackSocket silent;
  silent.listen();
  HttpClientOptions options;
  options.request_timeout = 300ms;
  HttpClient client(options);
  const std::string url = "http://127.0.0.1:" + std::to_string(silent.port()) + "/v1/hosts/x/maintenance";
  const auto start = std::chrono::steady_clock::now();
  const HttpError error = failureOf([&] { client.get(url); });
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(error.failure(), HttpFailure::timeout);
  EXPECT_THAT(error.what(), HasSubstr("GET " + url + ": "));
  EXPECT_THAT(error.what(), HasSubstr("(curl error 28)"));
}

TEST_F(ControllerHttpTest, ConnectionRefusedIsATransportError) {
  int port = 0;
  {
    LoopbackSocket closed;  // bound, not listening, then released
    port = closed.port();
  }
  HttpClient client({});
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";
  const HttpError error = failureOf([&] { client.get(url); });
  EXPECT_EQ(error.failure(), HttpFailure::transport);
  EXPECT_THAT(error.what(), HasSubstr("GET " + url + ": "));
  EXPECT_THAT(error.what(), HasSubstr("(curl error 7)"));
}

}  // namespace
}  // namespace hostmaint::agent::controller
