#include "hostmaint/agent/service/status_file.hpp"

#include "hostmaint/agent/journal.hpp"
#include "hostmaint/agent/status_json.hpp"

namespace hostmaint::service {

StatusFile::StatusFile(std::filesystem::path runtime_dir)
    : path_(std::move(runtime_dir) / "status.json") {}

void StatusFile::write(const agent::HostStatus& status) const {
  // World-readable: reading the status needs no privilege, like the D-Bus properties.
  write(agent::statusToJson(status).dump(2));
}

void StatusFile::write(const std::string& rendered) const {
  agent::writeFileAtomically(path_, rendered + "\n", 0644);
}

}  // namespace hostmaint::service
