// BusDispatcher: sd-bus driven by an io_context against a private dbus-daemon.
// Server and client both live on the one io_context, as in the daemon.
#include "hostmaint/agent/service/asio_sd_bus.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <optional>
#include <string>

#include "support/private_dbus.hpp"

namespace hostmaint::service {
namespace {

using fake::runUntil;

struct Echo {
  int calls = 0;
  int unanswered = 0;
  // Echo(s) → s; Silent() never replies, to exercise the client's timeout.
  static int echo(sd_bus_message* message, void* self, sd_bus_error*) {
    ++static_cast<Echo*>(self)->calls;
    const char* text = nullptr;
    const int read = sd_bus_message_read(message, "s", &text);
    if (read < 0) return read;
    return sd_bus_reply_method_return(message, "s", text);
  }
  static int silent(sd_bus_message*, void* self, sd_bus_error*) {
    ++static_cast<Echo*>(self)->unanswered;
    return 1;  // handled, no reply
  }
};

const sd_bus_vtable kEchoVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("Echo", "s", "s", &Echo::echo, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("Silent", "", "", &Echo::silent, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_VTABLE_END,
};

struct Reply {
  bool arrived = false;
  std::string error_name;
  std::string text;
  static int handle(sd_bus_message* message, void* self, sd_bus_error*) {
    auto& reply = *static_cast<Reply*>(self);
    reply.arrived = true;
    if (const sd_bus_error* error = sd_bus_message_get_error(message)) {
      reply.error_name = error->name ? error->name : "";
      return 0;
    }
    const char* text = nullptr;
    if (sd_bus_message_read(message, "s", &text) >= 0 && text) reply.text = text;
    return 0;
  }
};

class AsioSdBusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server = openBusAt(bus.address());
    client = openBusAt(bus.address());
    sd_bus_slot* raw = nullptr;
    ASSERT_GE(
        sd_bus_add_object_vtable(server.get(), &raw, "/test", "org.test.Echo", kEchoVtable, &echo),
        0);
    object_slot.reset(raw);
    requestBusName(server.get(), "org.test.Echo");
    server_dispatcher.emplace(io, server.get());
    client_dispatcher.emplace(io, client.get());
  }

  // Sends a call from the client without blocking; the loop carries it.
  SlotPtr callAsync(const char* method, Reply& reply, std::uint64_t timeout_usec = 0,
                    const char* text = nullptr) {
    sd_bus_message* raw_message = nullptr;
    EXPECT_GE(sd_bus_message_new_method_call(client.get(), &raw_message, "org.test.Echo", "/test",
                                             "org.test.Echo", method),
              0);
    MessagePtr message(raw_message);
    if (text) {
      EXPECT_GE(sd_bus_message_append(message.get(), "s", text), 0);
    }
    sd_bus_slot* raw_slot = nullptr;
    EXPECT_GE(sd_bus_call_async(client.get(), &raw_slot, message.get(), &Reply::handle, &reply,
                                timeout_usec),
              0);
    // Sent from outside a bus callback: let the dispatcher flush and re-arm.
    client_dispatcher->kick();
    return SlotPtr(raw_slot);
  }

  fake::PrivateDbus bus;
  boost::asio::io_context io;
  Echo echo;
  BusPtr server;
  BusPtr client;
  SlotPtr object_slot;
  std::optional<BusDispatcher> server_dispatcher;
  std::optional<BusDispatcher> client_dispatcher;
};

TEST_F(AsioSdBusTest, MethodCallRoundTripsOnOneLoop) {
  Reply reply;
  SlotPtr slot = callAsync("Echo", reply, 0, "hello");
  ASSERT_TRUE(runUntil(io, [&] { return reply.arrived; }));
  EXPECT_EQ(reply.error_name, "");
  EXPECT_EQ(reply.text, "hello");
  EXPECT_EQ(echo.calls, 1);
}

TEST_F(AsioSdBusTest, ManyCallsInFlightAllComplete) {
  std::vector<Reply> replies(50);
  std::vector<SlotPtr> slots;
  for (std::size_t i = 0; i < replies.size(); ++i)
    slots.push_back(callAsync("Echo", replies[i], 0, std::to_string(i).c_str()));
  ASSERT_TRUE(runUntil(io, [&] {
    return std::all_of(replies.begin(), replies.end(), [](const Reply& r) { return r.arrived; });
  }));
  for (std::size_t i = 0; i < replies.size(); ++i) EXPECT_EQ(replies[i].text, std::to_string(i));
  EXPECT_EQ(echo.calls, 50);
}

// The call's timeout is sd-bus's: only the dispatcher's timer can make it fire.
TEST_F(AsioSdBusTest, SdBusTimeoutFiresFromTheLoopTimer) {
  Reply reply;
  SlotPtr slot = callAsync("Silent", reply, 200'000);
  ASSERT_TRUE(runUntil(io, [&] { return reply.arrived; }));
  EXPECT_EQ(echo.unanswered, 1);
  EXPECT_EQ(reply.error_name, SD_BUS_ERROR_NO_REPLY);
}

TEST_F(AsioSdBusTest, NameAlreadyOwnedIsAClearError) {
  BusPtr second = openBusAt(bus.address());
  try {
    requestBusName(second.get(), "org.test.Echo");
    FAIL() << "a second owner was accepted";
  } catch (const BusSetupError& error) {
    EXPECT_NE(std::string(error.what()).find("org.test.Echo"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("already owned"), std::string::npos) << error.what();
  }
}

TEST_F(AsioSdBusTest, UnreachableBusNamesTheAddress) {
  try {
    openBusAt("unix:path=/nonexistent/hostmaint-test-bus");
    FAIL() << "connected to a bus that does not exist";
  } catch (const BusSetupError& error) {
    EXPECT_NE(std::string(error.what()).find("/nonexistent/hostmaint-test-bus"), std::string::npos)
        << error.what();
  }
}

// Destroying a dispatcher with waits outstanding must neither close sd-bus's
// fd nor run a handler on the dead dispatcher.
TEST_F(AsioSdBusTest, DispatcherCanGoAwayWithWaitsOutstanding) {
  client_dispatcher.reset();
  io.poll();
  EXPECT_GE(fcntl(sd_bus_get_fd(client.get()), F_GETFD), 0) << "the bus fd was closed";
  client_dispatcher.emplace(io, client.get());
  Reply reply;
  SlotPtr slot = callAsync("Echo", reply, 0, "again");
  ASSERT_TRUE(runUntil(io, [&] { return reply.arrived; }));
  EXPECT_EQ(reply.text, "again");
}

TEST_F(AsioSdBusTest, LostBusIsReported) {
  bool lost = false;
  BusPtr doomed = openBusAt(bus.address());
  BusDispatcher dispatcher(io, doomed.get(), [&] { lost = true; });
  // What the client sees when the bus daemon goes away: the socket hangs up.
  ASSERT_EQ(shutdown(sd_bus_get_fd(doomed.get()), SHUT_RDWR), 0);
  ASSERT_TRUE(runUntil(io, [&] { return lost; }));
}

}  // namespace
}  // namespace hostmaint::service
