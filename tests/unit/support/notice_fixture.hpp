// Engine tests that also follow the owners' notices: each published
// snapshot goes through a NoticeLedger, as the service does with it.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "hostmaint/agent/notice.hpp"
#include "support/engine_fixture.hpp"

namespace hostmaint::fake {

class NoticeLedgerTest : public EngineTest {
 protected:
  // What the service does with each published snapshot.
  std::vector<agent::NoticeLedger::Issued> observe() {
    shown = status();
    return ledger.observe(shown, clock.now());
  }
  const agent::DomainNotice& shownNotice(const std::string& name) const {
    for (const auto& d : shown.domains) {
      if (d.name == name && d.notice) return *d.notice;
    }
    throw std::out_of_range("no notice shown for " + name);
  }
  static std::vector<std::string> names(const std::vector<agent::NoticeLedger::Issued>& issued) {
    std::vector<std::string> out;
    for (const auto& i : issued) out.push_back(i.name);
    return out;
  }

  agent::NoticeLedger ledger{1000};
  agent::HostStatus shown;
};

}  // namespace hostmaint::fake
