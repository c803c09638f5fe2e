#include "hostmaint/agent/service/cordon_keeper.hpp"

#include <spdlog/spdlog.h>

#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "hostmaint/agent/journal.hpp"
#include "hostmaint/agent/status_json.hpp"

namespace hostmaint::service {

namespace {

using nlohmann::json;

constexpr int kCordonFileFormat = 1;

std::string describeRun(const agent::CordonCommandStatus& run) {
  if (!run.error.empty()) return "could not be run: " + run.error;
  if (run.timed_out) return "timed out and was killed";
  if (run.signal) return "killed by signal " + std::to_string(*run.signal);
  if (run.exit_status) return "exited with status " + std::to_string(*run.exit_status);
  return "ended";
}

// An override given as a UUID for a domain not defined here yet (an incoming
// migration) must match by UUID: the hook compares names with "domain".
bool looksLikeUuid(const std::string& text) {
  if (text.size() != 36) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (text[i] == '-')) return false;
    if (!dash && !std::isxdigit(static_cast<unsigned char>(text[i]))) return false;
  }
  return true;
}

}  // namespace

std::string cordonFileDocument(const agent::CordonStatus& cordon, const std::string& host,
                               agent::TimePoint written_at) {
  json allowed = json::array();
  for (const agent::CordonOverride& entry : cordon.allowed) {
    const std::string uuid =
        entry.uuid.empty() && looksLikeUuid(entry.domain) ? entry.domain : entry.uuid;
    allowed.push_back({{"domain", entry.domain},
                       {"uuid", uuid},
                       {"name", entry.name},
                       {"reason", entry.reason},
                       {"by", entry.by},
                       {"at", agent::formatTime(entry.at)}});
  }
  json restoring = json::array();
  for (const auto& [name, uuid] : cordon.restoring) {
    restoring.push_back({{"name", name}, {"uuid", uuid}});
  }
  json document = {
      {"format", kCordonFileFormat},
      {"host", host},
      {"cordoned", cordon.active},
      {"phase", agent::toString(cordon.phase)},
      {"session_id", cordon.session_id ? json(*cordon.session_id) : json(nullptr)},
      {"since", cordon.since ? json(agent::formatTime(*cordon.since)) : json(nullptr)},
      {"allowed", std::move(allowed)},
      {"restoring", std::move(restoring)},
      {"written_at", agent::formatTime(written_at)},
  };
  if (cordon.window) {
    document["window_start"] = agent::formatTime(cordon.window->start);
    document["window_end"] = agent::formatTime(cordon.window->end);
    document["reason"] = cordon.window->reason;
  }
  return document.dump(1) + "\n";
}

CordonKeeper::CordonKeeper(boost::asio::io_context& io, std::filesystem::path file,
                           std::string host, agent::CordonConfig config,
                           const agent::WallClock& clock, std::function<void()> on_change)
    : file_(std::move(file)),
      host_(std::move(host)),
      config_(std::move(config)),
      clock_(clock),
      on_change_(std::move(on_change)),
      runner_(io),
      was_active_(readFileState()) {}

std::optional<bool> CordonKeeper::readFileState() const {
  std::ifstream in(file_);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  try {
    const json document = json::parse(text.str());
    return document.value("cordoned", false);
  } catch (const json::exception& error) {
    spdlog::warn("cordon file {} is unreadable ({}); it is written again now", file_.string(),
                 error.what());
    return std::nullopt;
  }
}

void CordonKeeper::update(const agent::CordonStatus& cordon) {
  try {
    // Root only, like the journal beside it: overrides name domains and admins.
    agent::writeFileAtomically(file_, cordonFileDocument(cordon, host_, clock_.now()), 0600);
    if (file_error_) spdlog::info("the cordon file {} is written again", file_.string());
    file_error_.reset();
  } catch (const agent::JournalError& error) {
    if (!file_error_ || *file_error_ != error.what())
      spdlog::error("cannot write the cordon file, so libvirt's hook does not see the cordon: {}",
                    error.what());
    file_error_ = error.what();
    if (on_change_) on_change_();
  }
  const bool began = cordon.active && was_active_ != true;
  const bool ended = !cordon.active && was_active_ == true;
  was_active_ = cordon.active;
  if (began) {
    spdlog::info("host cordoned: libvirt refuses new domains here until the maintenance ends");
    runCommand("cordon", config_.cordon_command);
  } else if (ended) {
    spdlog::info("host uncordoned: libvirt accepts new domains here again");
    runCommand("uncordon", config_.uncordon_command);
  }
}

void CordonKeeper::runCommand(const std::string& which, const std::string& command) {
  // Only the latest run is shown: an uncordon replaces the cordon's.
  commands_.clear();
  if (command.empty()) return;
  agent::CordonCommandStatus run;
  run.which = which;
  run.command = command;
  run.running = true;
  run.started_at = clock_.now();
  commands_.push_back(run);
  spdlog::info("running the {} command: {}", which, command);
  runner_.run(command, config_.command_timeout, [this, which](const CommandResult& result) {
    for (agent::CordonCommandStatus& done : commands_) {
      if (done.which != which || !done.running) continue;
      done.running = false;
      done.finished_at = result.finished_at;
      done.exit_status = result.exit_status;
      done.signal = result.signal;
      done.timed_out = result.timed_out;
      done.output = result.output;
      done.error = result.error;
      if (done.ok()) {
        spdlog::info("the {} command succeeded", which);
      } else {
        spdlog::error("the {} command {} ({}); output: {}", which, describeRun(done),
                      done.command, done.output);
      }
    }
    if (on_change_) on_change_();
  });
  if (on_change_) on_change_();
}

void CordonKeeper::decorate(agent::CordonStatus& cordon) const {
  cordon.file = file_.string();
  cordon.file_error = file_error_;
  cordon.commands = commands_;
}

std::optional<agent::Blocker> CordonKeeper::blocker(const agent::CordonStatus& cordon) const {
  if (file_error_) {
    return agent::Blocker{"cordon", "libvirt's hook cannot see the cordon: " + *file_error_};
  }
  for (const agent::CordonCommandStatus& run : commands_) {
    if (run.running || run.ok()) continue;
    // A failed uncordon matters after the maintenance too: the cloud's
    // scheduler still avoids this host.
    if (run.which == "cordon" && !cordon.active) continue;
    return agent::Blocker{"cordon " + run.which + " command",
                          run.command + " " + describeRun(run) + "; see cordon.commands"};
  }
  return std::nullopt;
}

}  // namespace hostmaint::service
