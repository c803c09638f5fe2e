#include "commands.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <iostream>

#include <nlohmann/json.hpp>

#include "bus.hpp"
#include "exit_status.hpp"
#include "render.hpp"
#include "when.hpp"

namespace hostmaint::ctl {
namespace {

using nlohmann::json;

std::uint64_t generationOf(const json& status) {
  const auto it = status.find("generation");
  return it != status.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}

json parseStatus(const std::string& text) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& error) {
    throw CtlError(ExitStatus::refused,
                   std::string("hostmaintd's StatusJSON is not a JSON document: ") + error.what());
  }
}

// After a change signal: the document read afresh (the signal only names
// StatusJSON as invalidated), unless it is older than `status`; the
// generation orders them, so a display never steps back.
void takeNewerStatus(AgentClient& client, json& status) {
  json next = parseStatus(client.statusJson());
  if (generationOf(next) >= generationOf(status)) status = std::move(next);
}

RenderOptions renderOptionsNow() { return RenderOptions{Clock::now(), true}; }

std::uint64_t toUsec(TimePoint when, const std::string& text) {
  const auto usec = std::chrono::duration_cast<std::chrono::microseconds>(when.time_since_epoch()).count();
  if (usec < 0) throw CtlError(ExitStatus::usage, "time '" + text + "' is before 1970");
  return static_cast<std::uint64_t>(usec);
}

std::string textOf(const json& status, const char* key) {
  const auto found = status.find(key);
  return found != status.end() && found->is_string() ? found->get<std::string>() : std::string();
}

bool readyOf(const json& status) {
  const auto found = status.find("ready");
  return found != status.end() && found->is_boolean() && found->get<bool>();
}

struct TerminalSize {
  std::size_t columns = 80;
  std::size_t rows = 24;
};

TerminalSize terminalSize() {
  winsize size{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0 && size.ws_row > 0)
    return {size.ws_col, size.ws_row};
  return {};
}

// Redraws the live display in place (renderRedraw), in one write per frame.
class LiveDisplay {
 public:
  void draw(std::vector<std::string> lines) {
    const std::string out = renderRedraw(drawn_, lines);
    if (out.empty()) return;
    std::cout << out << std::flush;
    drawn_ = std::move(lines);
  }

 private:
  std::vector<std::string> drawn_;
};

}  // namespace

int runStatus(const std::string& address, bool as_json) {
  AgentClient client(address);
  const std::string document = client.statusJson();
  if (as_json) {
    // As is: the daemon's document is the contract (docs/status-json.md).
    std::cout << document << (document.empty() || document.back() != '\n' ? "\n" : "");
    return toInt(ExitStatus::success);
  }
  std::cout << renderStatus(parseStatus(document), renderOptionsNow());
  return toInt(ExitStatus::success);
}

int runNotices(const std::string& address, bool as_json) {
  AgentClient client(address);
  const json status = parseStatus(client.statusJson());
  if (as_json) {
    std::cout << noticesJson(status).dump(2) << "\n";
    return toInt(ExitStatus::success);
  }
  std::cout << renderNotices(status, renderOptionsNow());
  return toInt(ExitStatus::success);
}

int runSchedule(const std::string& address, const ScheduleArguments& arguments) {
  // One `now` for both ends, so "+1h" and "+3h" are exactly two hours apart.
  const TimePoint now = Clock::now();
  const TimePoint start = parseWhen(arguments.start, now);
  const TimePoint end = parseWhen(arguments.end, now);
  AgentClient client(address);
  const std::string session_id =
      client.schedule(toUsec(start, arguments.start), toUsec(end, arguments.end), arguments.removal,
                      arguments.reason);
  std::cout << "scheduled maintenance session " << printable(session_id) << "\n";
  const RenderOptions options = renderOptionsNow();
  std::cout << "  window: " << formatInstant(start, options.local_time) << " to "
            << formatInstant(end, options.local_time) << " (starts "
            << formatRelative(start, options.now) << ")" << (arguments.removal ? ", host removal" : "")
            << "\n";
  // The window is scheduled whatever happens next: a failure to show the
  // plan is reported but does not turn the command into a failure.
  try {
    const json status = parseStatus(client.statusJson());
    std::cout << "  phase:  " << printable(textOf(status, "phase")) << "\n";
    std::cout << "  plan:   " << renderPlanSummary(status) << "\n";
    const auto blockers = renderBlockers(status);
    if (!blockers.empty()) {
      std::cout << "  blockers:\n";
      for (const auto& line : blockers) std::cout << "    " << line << "\n";
    }
  } catch (const CtlError& error) {
    std::cerr << "hostmaintctl: scheduled, but cannot show the plan: " << printable(error.what())
              << "\n";
  }
  return toInt(ExitStatus::success);
}

int runReschedule(const std::string& address, const RescheduleArguments& arguments) {
  const TimePoint now = Clock::now();
  const TimePoint start = parseWhen(arguments.start, now);
  const TimePoint end = parseWhen(arguments.end, now);
  AgentClient client(address);
  // What the command line leaves out stays as it is: the daemon takes the
  // whole window, so removal and reason are read from the current one.
  bool removal = arguments.removal.value_or(false);
  std::string reason = arguments.reason.value_or("");
  if (!arguments.removal || !arguments.reason) {
    const json status = parseStatus(client.statusJson());
    const auto window = status.find("window");
    if (window != status.end() && window->is_object()) {
      if (!arguments.removal) removal = window->value("removal", false);
      if (!arguments.reason) {
        const auto current = window->find("reason");
        if (current != window->end() && current->is_string()) reason = current->get<std::string>();
      }
    }
  }
  client.reschedule(toUsec(start, arguments.start), toUsec(end, arguments.end), removal, reason);
  const RenderOptions options = renderOptionsNow();
  std::cout << "maintenance rescheduled\n";
  std::cout << "  window: " << formatInstant(start, options.local_time) << " to "
            << formatInstant(end, options.local_time) << " (starts "
            << formatRelative(start, options.now) << ")" << (removal ? ", host removal" : "")
            << "\n";
  // Rescheduled whatever happens next, as after `schedule`.
  try {
    const json status = parseStatus(client.statusJson());
    std::cout << "  phase:   " << printable(textOf(status, "phase")) << "\n";
    std::cout << "  notices: " << renderNoticeSummary(status, options) << "\n";
  } catch (const CtlError& error) {
    std::cerr << "hostmaintctl: rescheduled, but cannot show the status: "
              << printable(error.what()) << "\n";
  }
  return toInt(ExitStatus::success);
}

int runCancel(const std::string& address) {
  AgentClient client(address);
  client.cancel();
  std::cout << "maintenance cancelled; what was already done is being undone "
               "(follow with: hostmaintctl wait --phase idle)\n";
  return toInt(ExitStatus::success);
}

int runAcknowledge(const std::string& address, const std::string& domain, const std::string& choice,
                   const std::string& reason) {
  AgentClient client(address);
  client.acknowledge(domain, choice, reason);
  std::cout << "acknowledged " << printable(domain) << ": " << choice
            << (reason.empty() ? "" : " (" + printable(reason) + ")") << "\n";
  return toInt(ExitStatus::success);
}

int runBegin(const std::string& address) {
  AgentClient client(address);
  client.begin();
  std::cout << "maintenance begun: the host is empty and yours (end it with: hostmaintctl finish)\n";
  return toInt(ExitStatus::success);
}

int runFinish(const std::string& address) {
  AgentClient client(address);
  client.finish();
  std::cout << "maintenance finished; suspended and shut-down domains are being restored "
               "(follow with: hostmaintctl wait --phase idle)\n";
  return toInt(ExitStatus::success);
}

int runWait(const std::string& address, const WaitArguments& arguments) {
  using namespace std::chrono;
  const auto started = steady_clock::now();
  std::optional<steady_clock::time_point> deadline;
  if (arguments.timeout_seconds)
    deadline = started + duration_cast<steady_clock::duration>(duration<double>(*arguments.timeout_seconds));
  const std::string goal = arguments.ready ? "the host to be ready" : "phase " + *arguments.phase;

  AgentClient client(address);
  StatusWatch watch(client);  // before the first read: no change can slip between
  json status = parseStatus(client.statusJson());
  json previous;
  const bool live = isatty(STDOUT_FILENO) == 1;
  LiveDisplay display;

  while (true) {
    const RenderOptions options = renderOptionsNow();
    if (live) {
      const TerminalSize size = terminalSize();
      display.draw(renderWaitFrame(status, options, duration_cast<seconds>(steady_clock::now() - started),
                                   size.columns - 1, size.rows - 1));
    } else if (previous != status) {
      const auto lines = renderWaitLines(status, previous, options);
      // Only a status that was reported becomes the base of the next
      // comparison, so slow progress still crosses its quarters.
      if (!lines.empty() || previous.is_null()) {
        for (const auto& line : lines) std::cout << line << "\n";
        std::cout << std::flush;
        previous = status;
      }
    }
    if (live) previous = status;

    const bool reached = arguments.ready ? readyOf(status) : textOf(status, "phase") == *arguments.phase;
    if (reached) {
      std::cout << (arguments.ready ? "host is ready" : "host is in phase " + *arguments.phase) << "\n";
      return toInt(ExitStatus::success);
    }
    if (arguments.ready && textOf(status, "phase") == "idle")
      throw CtlError(ExitStatus::refused,
                     "no maintenance is scheduled, so the host will not become ready "
                     "(schedule one with: hostmaintctl schedule)");

    // On a terminal the elapsed time is redrawn every second; the status
    // itself only ever comes from change signals.
    auto wake = deadline;
    if (live) {
      const auto tick = steady_clock::now() + seconds(1);
      wake = deadline ? std::min(*deadline, tick) : tick;
    }
    switch (watch.next(wake)) {
      case StatusWatch::Event::changed:
        takeNewerStatus(client, status);
        break;
      case StatusWatch::Event::daemon_gone:
        throw CtlError(ExitStatus::unreachable, "hostmaintd left the bus while waiting for " + goal);
      case StatusWatch::Event::timed_out:
        if (deadline && steady_clock::now() >= *deadline) {
          std::cerr << "timed out after " << *arguments.timeout_seconds << "s waiting for " << goal
                    << "; phase is " << printable(textOf(status, "phase")) << "\n";
          const auto blockers = renderBlockers(status);
          if (!blockers.empty()) {
            std::cerr << "still blocking:\n";
            for (const auto& line : blockers) std::cerr << "  " << line << "\n";
          }
          return toInt(ExitStatus::wait_timed_out);
        }
        break;
    }
  }
}

int runAllow(const std::string& address, const std::string& domain, const std::string& reason) {
  AgentClient client(address);
  client.allowDomain(domain, reason);
  std::cout << "allowed " << printable(domain)
            << " to start on or migrate into this host despite the cordon"
            << (reason.empty() ? "" : " (" + printable(reason) + ")")
            << "; until the maintenance ends (undo with: hostmaintctl disallow "
            << printable(domain) << ")\n";
  return toInt(ExitStatus::success);
}

int runDisallow(const std::string& address, const std::string& domain) {
  AgentClient client(address);
  client.disallowDomain(domain);
  std::cout << printable(domain) << " is refused again while the host is cordoned\n";
  return toInt(ExitStatus::success);
}

namespace {

struct ShutdownCounts {
  std::string state;
  std::size_t total = 0, acting = 0, done = 0, failed = 0;
};

ShutdownCounts shutdownCountsOf(const json& status) {
  ShutdownCounts counts;
  const auto record = status.find("host_shutdown");
  if (record == status.end() || !record->is_object()) return counts;
  counts.state = textOf(*record, "state");
  const auto domains = record->find("domains");
  if (domains == record->end() || !domains->is_array()) return counts;
  for (const json& domain : *domains) {
    const std::string result = textOf(domain, "result");
    ++counts.total;
    if (result == "failed") ++counts.failed;
    else if (result == "pending" || result == "acting") ++counts.acting;
    else ++counts.done;
  }
  return counts;
}

}  // namespace

int runHostShutdown(const std::string& address, const HostShutdownArguments& arguments) {
  using namespace std::chrono;
  if (arguments.only_when_system_stops) {
    std::string problem;
    const std::optional<std::string> state = systemManagerState(problem);
    if (!state) throw CtlError(ExitStatus::unreachable, problem + "; not acting");
    if (*state != "stopping") {
      // A stop of hostmaint-shutdown.service alone (an upgrade, an admin's
      // systemctl) is not the host going down: nothing may be suspended.
      std::cout << "the system is not shutting down (systemd state: " << printable(*state)
                << "); no domain touched\n";
      return toInt(ExitStatus::success);
    }
  }
  const auto started = steady_clock::now();
  AgentClient client(address);
  StatusWatch watch(client);
  client.hostShutdown();
  std::cout << "host shutdown: every running domain gets its host_shutdown_action\n"
            << std::flush;
  if (!arguments.wait) return toInt(ExitStatus::success);
  std::optional<steady_clock::time_point> deadline;
  if (arguments.timeout_seconds)
    deadline = started + duration_cast<steady_clock::duration>(duration<double>(*arguments.timeout_seconds));
  json status = parseStatus(client.statusJson());
  std::string last_line;
  while (true) {
    const ShutdownCounts counts = shutdownCountsOf(status);
    const std::string line = std::to_string(counts.done) + " of " + std::to_string(counts.total) +
                             " domains done, " + std::to_string(counts.acting) + " in progress, " +
                             std::to_string(counts.failed) + " failed";
    if (line != last_line) {
      std::cout << "  " << line << "\n" << std::flush;
      last_line = line;
    }
    if (counts.state != "in-progress" && !counts.state.empty()) {
      const double seconds_taken = duration<double>(steady_clock::now() - started).count();
      std::cout << "host shutdown handled in " << std::fixed;
      std::cout.precision(1);
      std::cout << seconds_taken << " s\n";
      if (counts.failed > 0) {
        std::cerr << "hostmaintctl: " << counts.failed
                  << " domain(s) could not be suspended or shut down; see hostmaintctl status\n";
        return toInt(ExitStatus::refused);
      }
      return toInt(ExitStatus::success);
    }
    switch (watch.next(deadline)) {
      case StatusWatch::Event::changed:
        takeNewerStatus(client, status);
        break;
      case StatusWatch::Event::daemon_gone:
        throw CtlError(ExitStatus::unreachable, "hostmaintd left the bus during the host shutdown");
      case StatusWatch::Event::timed_out:
        if (deadline && steady_clock::now() >= *deadline) {
          std::cerr << "timed out after " << *arguments.timeout_seconds
                    << "s; the host shutdown goes on in hostmaintd (" << last_line << ")\n";
          return toInt(ExitStatus::wait_timed_out);
        }
        break;
    }
  }
}

}  // namespace hostmaint::ctl
