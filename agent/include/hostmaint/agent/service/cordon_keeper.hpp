// CordonKeeper carries the engine's cordon to the outside: it writes the
// cordon file that libvirt's hook (hostmaint-libvirt-hook) reads before every
// start and incoming migration, and runs the [cordon] commands when the
// cordon begins and ends (docs/operations.md, "Cordon").
//
// The file lives in the state directory, so the cordon outlasts a stopped
// hostmaintd and a reboot (libvirt's autostart at boot asks the hook too).
// It is also the keeper's memory: at start, what the file says tells whether
// a cordon or uncordon command is still owed.
#pragma once

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "hostmaint/agent/config.hpp"
#include "hostmaint/agent/model.hpp"
#include "hostmaint/agent/service/command_runner.hpp"

namespace hostmaint::service {

// The cordon file's document (docs/operations.md, "The cordon file").
std::string cordonFileDocument(const agent::CordonStatus& cordon, const std::string& host,
                               agent::TimePoint written_at);

class CordonKeeper {
 public:
  // `on_change`: the keeper's part of the status changed (a command ran or
  // ended, the file could not be written): publish again.
  CordonKeeper(boost::asio::io_context& io, std::filesystem::path file, std::string host,
               agent::CordonConfig config, const agent::WallClock& clock,
               std::function<void()> on_change);

  // The engine's cordon changed: writes the file now (before the start it
  // may allow) and starts a command when the cordon began or ended.
  void update(const agent::CordonStatus& cordon);
  // Adds the file, its write error and the commands' runs to `cordon`.
  void decorate(agent::CordonStatus& cordon) const;
  // A failing command or an unwritable file, as a blocker; nullopt when none.
  std::optional<agent::Blocker> blocker(const agent::CordonStatus& cordon) const;
  void reload(agent::CordonConfig config) { config_ = std::move(config); }

  const std::filesystem::path& file() const { return file_; }

 private:
  // Whether the file on disk says cordoned; nullopt when there is none.
  std::optional<bool> readFileState() const;
  void runCommand(const std::string& which, const std::string& command);

  std::filesystem::path file_;
  std::string host_;
  agent::CordonConfig config_;
  const agent::WallClock& clock_;
  std::function<void()> on_change_;
  CommandRunner runner_;
  std::optional<bool> was_active_;  // as last written; from the file at start
  std::optional<std::string> file_error_;
  std::vector<agent::CordonCommandStatus> commands_;  // the latest run, if any
};

}  // namespace hostmaint::service
