// One function per hostmaintctl command. Each returns the process exit code
// or throws CtlError; main() owns argument parsing and error printing.
#pragma once

#include <optional>
#include <string>

namespace hostmaint::ctl {

struct ScheduleArguments {
  std::string start;  // WHEN text, parsed by parseWhen
  std::string end;
  bool removal = false;
  std::string reason;
};

// reschedule: removal and reason unset keep the current window's.
struct RescheduleArguments {
  std::string start;
  std::string end;
  std::optional<bool> removal;
  std::optional<std::string> reason;
};

struct WaitArguments {
  bool ready = false;                 // wait until Ready is true
  std::optional<std::string> phase;   // or until the host is in this phase
  std::optional<double> timeout_seconds;
};

struct HostShutdownArguments {
  bool only_when_system_stops = false;  // act only when systemd's state is "stopping"
  bool wait = true;                      // until every domain got its action
  std::optional<double> timeout_seconds;
};

// `address` empty: the system bus ($DBUS_SYSTEM_BUS_ADDRESS honoured).
int runStatus(const std::string& address, bool as_json);
int runNotices(const std::string& address, bool as_json);
int runSchedule(const std::string& address, const ScheduleArguments& arguments);
int runReschedule(const std::string& address, const RescheduleArguments& arguments);
int runCancel(const std::string& address);
int runAcknowledge(const std::string& address, const std::string& domain, const std::string& choice,
                   const std::string& reason);
int runBegin(const std::string& address);
int runFinish(const std::string& address);
int runWait(const std::string& address, const WaitArguments& arguments);
int runAllow(const std::string& address, const std::string& domain, const std::string& reason);
int runDisallow(const std::string& address, const std::string& domain);
int runHostShutdown(const std::string& address, const HostShutdownArguments& arguments);

}  // namespace hostmaint::ctl
