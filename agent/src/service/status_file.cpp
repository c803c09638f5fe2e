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
  // Readers need it whole (the rename), not durable: it describes this
  // process, which writes it again at every start before READY=1, and it
  // lives in the runtime directory (a tmpfs under /run). Syncing 400 kB at
  // each publication of 500 domains only delayed the publication.
  agent::writeFileAtomically(path_, rendered + "\n", 0644, agent::FileSync::visible_only);
}

}  // namespace hostmaint::service
