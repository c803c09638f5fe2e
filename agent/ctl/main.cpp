// hostmaintctl: the admin's command line for hostmaintd, over D-Bus.
#include <iostream>

#include <CLI/CLI.hpp>

#include "commands.hpp"
#include "exit_status.hpp"

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

  ScheduleArguments schedule_arguments;
  auto* schedule = app.add_subcommand("schedule", "Schedule a maintenance window and plan it");
  schedule->add_option("--start", schedule_arguments.start, "Window start (WHEN)")->required();
  schedule->add_option("--end", schedule_arguments.end, "Window end (WHEN)")->required();
  schedule->add_flag("--removal", schedule_arguments.removal,
                     "The host leaves for good: nothing may stay on it");
  schedule->add_option("--reason", schedule_arguments.reason, "Why (shown to everyone)");

  app.add_subcommand("cancel", "Cancel the scheduled or draining maintenance, undoing what was done");

  std::string ack_domain;
  std::string ack_choice;
  auto* ack = app.add_subcommand("ack", "Acknowledge a domain that needs its owner's consent");
  ack->add_option("domain", ack_domain, "Domain name or UUID")->required();
  ack->add_option("choice", ack_choice, "move: go ahead with its action; keep: leave it in place")
      ->required()
      ->check(CLI::IsMember({"move", "keep"}));

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
    if (*schedule) return runSchedule(address, schedule_arguments);
    if (app.got_subcommand("cancel")) return runCancel(address);
    if (*ack) return runAcknowledge(address, ack_domain, ack_choice);
    if (app.got_subcommand("begin")) return runBegin(address);
    if (app.got_subcommand("finish")) return runFinish(address);
    if (*wait) return runWait(address, wait_arguments);
  } catch (const CtlError& error) {
    std::cerr << "hostmaintctl: " << error.what() << "\n";
    return toInt(error.status());
  }
  return toInt(ExitStatus::usage);
}
