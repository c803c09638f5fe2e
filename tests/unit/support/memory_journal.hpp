// An in-memory Journal for engine tests: keeps the last document, counts
// saves, and can be told to fail like a full disk.
#pragma once

#include <optional>
#include <string>

#include "hostmaint/agent/journal.hpp"

namespace hostmaint::fake {

class MemoryJournal final : public agent::Journal {
 public:
  std::optional<std::string> load() override { return document_; }
  void save(const std::string& document) override {
    if (failing_) throw agent::JournalError("state.json: No space left on device (test)");
    document_ = document;
    ++saves_;
  }

  const std::optional<std::string>& document() const { return document_; }
  // As if another process (or a bad disk) had left this document.
  void setDocument(std::string document) { document_ = std::move(document); }
  int saves() const { return saves_; }
  void setFailing(bool failing) { failing_ = failing; }

 private:
  std::optional<std::string> document_;
  int saves_ = 0;
  bool failing_ = false;
};

}  // namespace hostmaint::fake
