// {runtime_dir}/status.json: the status document (docs/status-json.md),
// replaced atomically so a reader sees the old or the new one, never half.
#pragma once

#include <filesystem>

#include "hostmaint/agent/model.hpp"

namespace hostmaint::service {

class StatusFile {
 public:
  explicit StatusFile(std::filesystem::path runtime_dir);

  // Throws agent::JournalError naming the file when it cannot be written.
  void write(const agent::HostStatus& status) const;
  // The same, already rendered (statusToJson(status).dump(2)): one rendering for the
  // file and the StatusJSON property.
  void write(const std::string& rendered) const;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace hostmaint::service
