// hostmaintctl: the admin's command line for hostmaintd, over D-Bus.
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "commands.hpp"
#include "fleet_commands.hpp"
#include "hostmaint/agent/config.hpp"
#include "exit_status.hpp"
#include "render.hpp"

namespace {

constexpr const char* kExitCodes =
    "Exit codes:\n"
    "  0  success\n"
    "  1  refused by hostmaintd (its message says why and what to do instead)\n"
    "  2  usage error (bad command line or time)\n"
    "  3  hostmaintd not running, or the bus unreachable\n"
    "  4  wait timed out (what still blocks is printed)\n"
    "  5  access denied (changing maintenance needs root; reading does not)\n"
    "\n"
    "WHEN: now, +90s, +30m, +2h, +1h30m, +1d, or ISO 8601 such as 2026-11-25T10:00:00Z\n"
    "or 2026-11-25T11:00:00+01:00; a time without an offset is UTC.";

std::string commandList(CLI::App& app) {
  std::string list;
  for (const CLI::App* command : app.get_subcommands([](CLI::App*) { return true; }))
    list += (list.empty() ? "" : ", ") + command->get_name();
  return list;
}

// CLI11 says "A subcommand is required" or "The following arguments were
// not expected" for a mistyped verb; the operator needs to hear which word
// was not understood and which would have been. The verb is the first
// argument that is not an option of hostmaintctl itself (--address takes a
// value); help and version are left to CLI11.
std::optional<std::string> commandProblem(CLI::App& app, int argc, char** argv) {
  std::optional<std::string> word;
  for (int i = 1; i < argc && !word; ++i) {
    const std::string_view argument = argv[i];
    if (argument == "-h" || argument == "--help" || argument == "--version") return std::nullopt;
    if (argument == "--") {
      if (i + 1 < argc) word = argv[i + 1];
      break;
    }
    if (argument == "--address") {
      ++i;
      continue;
    }
    if (argument.starts_with("-")) continue;
    word = std::string(argument);
  }
  if (!word) return "a command is required; commands: " + commandList(app);
  for (const CLI::App* command : app.get_subcommands([](CLI::App*) { return true; }))
    if (command->check_name(*word)) return std::nullopt;
  return "unknown command '" + hostmaint::ctl::printable(*word) + "'; commands: " +
         commandList(app) + " (see hostmaintctl --help)";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace hostmaint::ctl;

  CLI::App app{"hostmaintctl: schedule, watch and finish maintenance of this hypervisor host "
               "through hostmaintd (D-Bus org.hostmaint.Agent1)",
               "hostmaintctl"};
  app.footer(kExitCodes);
  app.set_version_flag("--version", HOSTMAINT_VERSION);
  app.require_subcommand(1);

  std::string address;
  app.add_option("--address", address,
                 "D-Bus address of the bus hostmaintd is on (default: $DBUS_SYSTEM_BUS_ADDRESS, "
                 "else the system bus)");

  bool status_json = false;
  auto* status = app.add_subcommand("status", "Show the host's maintenance status");
  status->add_flag("--json", status_json, "Print the status document (docs/status-json.md) as is");

  bool notices_json = false;
  auto* notices = app.add_subcommand(
      "notices", "Show every domain's owner notice: revision, ack state and deadline");
  notices->add_flag("--json", notices_json,
                    "Print the notices as JSON: [{uuid, name, notice}] (docs/notices.md)");

  ScheduleArguments schedule_arguments;
  auto* schedule = app.add_subcommand("schedule", "Schedule a maintenance window and plan it");
  schedule->add_option("--start", schedule_arguments.start, "Window start (WHEN)")->required();
  schedule->add_option("--end", schedule_arguments.end, "Window end (WHEN)")->required();
  schedule->add_flag("--removal", schedule_arguments.removal,
                     "The host leaves for good: nothing may stay on it");
  schedule->add_option("--reason", schedule_arguments.reason, "Why (shown to everyone)");

  RescheduleArguments reschedule_arguments;
  auto* reschedule = app.add_subcommand(
      "reschedule", "Move the window of the scheduled maintenance (while draining: its end only)");
  reschedule->add_option("--start", reschedule_arguments.start, "New window start (WHEN)")
      ->required();
  reschedule->add_option("--end", reschedule_arguments.end, "New window end (WHEN)")->required();
  auto* reschedule_removal = reschedule->add_flag_callback(
      "--removal", [&] { reschedule_arguments.removal = true; },
      "The host leaves for good (default: as scheduled)");
  auto* reschedule_no_removal = reschedule->add_flag_callback(
      "--no-removal", [&] { reschedule_arguments.removal = false; },
      "The host comes back after all (default: as scheduled)");
  reschedule_removal->excludes(reschedule_no_removal);
  reschedule->add_option("--reason", reschedule_arguments.reason,
                         "Why (default: the reason given when scheduling)");

  app.add_subcommand("cancel", "Cancel the scheduled or draining maintenance, undoing what was done");

  std::string ack_domain;
  std::string ack_choice;
  std::string ack_reason;
  auto* ack = app.add_subcommand("ack", "Acknowledge a domain that needs its owner's consent");
  ack->add_option("domain", ack_domain, "Domain name or UUID")->required();
  ack->add_option("choice", ack_choice, "move: go ahead with its action; keep: leave it in place")
      ->required()
      ->check(CLI::IsMember({"move", "keep"}));
  ack->add_option("--reason", ack_reason, "Why (kept with the ack, shown in status and notice)");

  app.add_subcommand("begin", "Start work on the empty host (phase empty -> in-maintenance)");
  app.add_subcommand("finish", "End maintenance and restore what was suspended or shut down");

  WaitArguments wait_arguments;
  auto* wait = app.add_subcommand("wait", "Wait until the host is ready or reaches a phase");
  auto* wait_ready = wait->add_flag("--ready", wait_arguments.ready, "Until the host is evidenced empty");
  auto* wait_phase =
      wait->add_option("--phase", wait_arguments.phase, "Until the host is in PHASE")
          ->check(CLI::IsMember({"idle", "scheduled", "draining", "empty", "in-maintenance", "restoring"}));
  wait_ready->excludes(wait_phase);
  wait->add_option("--timeout", wait_arguments.timeout_seconds, "Give up after SECONDS (exit 4)")
      ->check(CLI::NonNegativeNumber);

  std::string allow_domain;
  std::string allow_reason;
  auto* allow = app.add_subcommand(
      "allow", "Let a domain start on or migrate into this host despite the cordon");
  allow->add_option("domain", allow_domain, "Domain name or UUID")->required();
  allow->add_option("--reason", allow_reason, "Why (kept with the override, shown in status)");
  std::string disallow_domain;
  auto* disallow = app.add_subcommand("disallow", "Take back an allow");
  disallow->add_option("domain", disallow_domain, "Domain name or UUID")->required();

  HostShutdownArguments shutdown_arguments;
  auto* host_shutdown = app.add_subcommand(
      "host-shutdown",
      "The host is going down: suspend or shut down every running domain (its "
      "host_shutdown_action) now, in parallel; they come back when hostmaintd starts again");
  host_shutdown->add_flag("--only-when-system-stops", shutdown_arguments.only_when_system_stops,
                          "Do nothing unless systemd is shutting the system down (used by "
                          "hostmaint-shutdown.service)");
  host_shutdown->add_flag_callback(
      "--no-wait", [&] { shutdown_arguments.wait = false; },
      "Return once hostmaintd has started, without waiting for every domain");
  host_shutdown->add_option("--timeout", shutdown_arguments.timeout_seconds,
                            "Stop waiting after SECONDS (exit 4; hostmaintd goes on)")
      ->check(CLI::NonNegativeNumber);

  // fleet: read from and written to etcd with hostmaintd's [fleet] settings.
  std::string fleet_config = hostmaint::agent::kDefaultConfigPath;
  auto* fleet = app.add_subcommand(
      "fleet", "The fleet's hosts and rolling maintenance, through etcd (docs/fleet.md)");
  fleet->require_subcommand(1);
  fleet->add_option("--config", fleet_config,
                    "hostmaintd's configuration, for its [fleet] settings (default: " +
                        std::string(hostmaint::agent::kDefaultConfigPath) + ")");
  bool fleet_status_json = false;
  auto* fleet_status = fleet->add_subcommand(
      "status", "Every host's phase, slot, readiness and progress, and the rolling schedule");
  fleet_status->add_flag("--json", fleet_status_json, "Print the fleet's view as JSON");
  FleetScheduleArguments fleet_schedule_arguments;
  auto* fleet_schedule = fleet->add_subcommand(
      "schedule", "Roll maintenance over hosts: each enters it when it gets a slot");
  auto* fleet_hosts = fleet_schedule->add_option("--hosts", fleet_schedule_arguments.hosts,
                                                 "Comma-separated host names (as in the fleet)");
  auto* fleet_all = fleet_schedule->add_flag("--all", fleet_schedule_arguments.all,
                                             "Every host that publishes a record");
  fleet_hosts->excludes(fleet_all);
  fleet_schedule
      ->add_option("--max-concurrent", fleet_schedule_arguments.max_concurrent,
                   "Hosts in maintenance at once for this schedule")
      ->required()
      ->check(CLI::PositiveNumber);
  fleet_schedule->add_option("--window", fleet_schedule_arguments.window,
                             "START/END, each a WHEN (default: now/+1d)");
  fleet_schedule->add_option("--reason", fleet_schedule_arguments.reason,
                             "Why (shown to everyone)");

  if (const auto problem = commandProblem(app, argc, argv)) {
    std::cerr << "hostmaintctl: " << *problem << "\n";
    return toInt(ExitStatus::usage);
  }

  try {
    app.parse(argc, argv);
    if (*wait && !wait_arguments.ready && !wait_arguments.phase)
      throw CLI::ValidationError("wait", "needs --ready or --phase PHASE");
  } catch (const CLI::ParseError& error) {
    // Help and --version exit 0; every real parse failure is a usage error.
    const int code = app.exit(error);
    return code == 0 ? 0 : toInt(ExitStatus::usage);
  }

  try {
    if (*status) return runStatus(address, status_json);
    if (*notices) return runNotices(address, notices_json);
    if (*schedule) return runSchedule(address, schedule_arguments);
    if (*reschedule) return runReschedule(address, reschedule_arguments);
    if (app.got_subcommand("cancel")) return runCancel(address);
    if (*ack) return runAcknowledge(address, ack_domain, ack_choice, ack_reason);
    if (app.got_subcommand("begin")) return runBegin(address);
    if (app.got_subcommand("finish")) return runFinish(address);
    if (*wait) return runWait(address, wait_arguments);
    if (*allow) return runAllow(address, allow_domain, allow_reason);
    if (*disallow) return runDisallow(address, disallow_domain);
    if (*host_shutdown) return runHostShutdown(address, shutdown_arguments);
    if (*fleet_status) return runFleetStatus(fleet_config, fleet_status_json);
    if (*fleet_schedule) return runFleetSchedule(fleet_config, fleet_schedule_arguments);
  } catch (const CtlError& error) {
    // The message may quote what others sent (a domain name, a reason).
    std::cerr << "hostmaintctl: " << printable(error.what()) << "\n";
    return toInt(error.status());
  }
  return toInt(ExitStatus::usage);
}
