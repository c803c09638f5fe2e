// An in-memory Journal for engine tests: keeps the whole document (each
// update applied to it), the last update, counts saves, and can be told to
// fail like a full disk.
#pragma once

#include <optional>
#include <string>

#include "hostmaint/agent/journal.hpp"

namespace hostmaint::fake {

class MemoryJournal final : public agent::Journal {
 public:
  std::optional<std::string> load() override { return document_; }
  void save(const agent::JournalUpdate& update) override {
    if (failing_) throw agent::JournalError("state.json: No space left on device (test)");
    agent::JournalDocument next =
        document_ ? agent::JournalDocument::parse(*document_, "test journal") : agent::JournalDocument{};
    next.apply(update);
    document_ = next.render();
    last_update_ = update;
    records_saved_ += update.records.size();
    ++saves_;
  }

  const std::optional<std::string>& document() const { return document_; }
  // As if another process (or a bad disk) had left this document.
  void setDocument(std::string document) { document_ = std::move(document); }
  int saves() const { return saves_; }
  const agent::JournalUpdate& lastUpdate() const { return last_update_; }
  // Domain records in all saves so far.
  std::size_t recordsSaved() const { return records_saved_; }
  void setFailing(bool failing) { failing_ = failing; }

 private:
  std::optional<std::string> document_;
  agent::JournalUpdate last_update_;
  std::size_t records_saved_ = 0;
  int saves_ = 0;
  bool failing_ = false;
};

}  // namespace hostmaint::fake
