// How hostmaintctl turns a failed D-Bus call into an exit status and message:
// scripts depend on these codes (docs/hostmaintctl.md).

#include "bus.hpp"

#include <gtest/gtest.h>

namespace hostmaint::ctl {
namespace {

const std::string kAddress = "unix:path=/run/dbus/system_bus_socket";

CtlError failure(const char* name, const char* message, int result = -EIO) {
  BusError error;
  if (name) sd_bus_error_set(error.get(), name, message);
  return describeCallFailure(result, *error.raw(), "Cancel", kAddress);
}

TEST(CtlExitStatus, RefusalIsOneWithTheDaemonsMessageVerbatim) {
  const auto error = failure(kRefusedError, "cannot cancel: maintenance is in phase 'empty'; use finish");
  EXPECT_EQ(error.status(), ExitStatus::refused);
  EXPECT_STREQ(error.what(), "cannot cancel: maintenance is in phase 'empty'; use finish");
}

TEST(CtlExitStatus, AccessDeniedIsFiveAndSaysRootIsNeeded) {
  const auto error = failure(SD_BUS_ERROR_ACCESS_DENIED, "Rejected send message");
  EXPECT_EQ(error.status(), ExitStatus::access_denied);
  EXPECT_NE(std::string(error.what()).find("access denied for Cancel"), std::string::npos);
  EXPECT_NE(std::string(error.what()).find("needs root"), std::string::npos);
  EXPECT_NE(std::string(error.what()).find("Rejected send message"), std::string::npos);
}

TEST(CtlExitStatus, NoOwnerIsThreeAndSaysTheDaemonIsNotRunning) {
  for (const char* name : {SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER}) {
    const auto error = failure(name, "The name is not activatable");
    EXPECT_EQ(error.status(), ExitStatus::unreachable) << name;
    EXPECT_EQ(std::string(error.what()),
              "hostmaintd is not running (no owner for org.hostmaint.Agent1 on the system bus at " +
                  kAddress + ")");
  }
}

TEST(CtlExitStatus, TransportFailuresAreThree) {
  const auto lost = failure(nullptr, nullptr, -ECONNRESET);
  EXPECT_EQ(lost.status(), ExitStatus::unreachable);
  EXPECT_NE(std::string(lost.what()).find("lost the connection to the bus at " + kAddress + " during Cancel"),
            std::string::npos);
  EXPECT_EQ(failure(SD_BUS_ERROR_NO_REPLY, "timed out").status(), ExitStatus::unreachable);
}

TEST(CtlExitStatus, InvalidArgumentsAreUsageErrors) {
  EXPECT_EQ(failure(SD_BUS_ERROR_INVALID_ARGS, "choice must be move or keep").status(), ExitStatus::usage);
}

TEST(CtlExitStatus, UnknownErrorsAreOneAndNameTheError) {
  const auto unknown = failure("org.example.Error.Odd", "odd");
  EXPECT_EQ(unknown.status(), ExitStatus::refused);
  EXPECT_STREQ(unknown.what(), "Cancel failed: org.example.Error.Odd: odd");
  const auto old_daemon = failure(SD_BUS_ERROR_UNKNOWN_METHOD, "Unknown method Begin");
  EXPECT_EQ(old_daemon.status(), ExitStatus::refused);
  EXPECT_NE(std::string(old_daemon.what()).find("newer than the running daemon"), std::string::npos);
}

TEST(CtlExitStatus, CodesAreTheDocumentedNumbers) {
  EXPECT_EQ(toInt(ExitStatus::success), 0);
  EXPECT_EQ(toInt(ExitStatus::refused), 1);
  EXPECT_EQ(toInt(ExitStatus::usage), 2);
  EXPECT_EQ(toInt(ExitStatus::unreachable), 3);
  EXPECT_EQ(toInt(ExitStatus::wait_timed_out), 4);
  EXPECT_EQ(toInt(ExitStatus::access_denied), 5);
}

}  // namespace
}  // namespace hostmaint::ctl
