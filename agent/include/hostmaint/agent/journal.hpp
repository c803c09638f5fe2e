// Durable storage of the engine's state, written before each action so a
// restarted daemon continues the maintenance where it was.
//
// The engine serializes its own versioned state (JSON); the journal only
// guarantees that a save is atomic and durable: temp file, fsync, rename,
// fsync of the directory. A crash leaves either the old or the new state.
#pragma once

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

namespace hostmaint::agent {

class JournalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Journal {
 public:
  virtual ~Journal() = default;
  // The last saved document, or nullopt when nothing was ever saved.
  virtual std::optional<std::string> load() = 0;
  // Throws JournalError (with the path and errno text) when it cannot save.
  virtual void save(const std::string& document) = 0;
};

// Journal in `<state_dir>/state.json`.
class FileJournal final : public Journal {
 public:
  explicit FileJournal(std::filesystem::path state_dir);
  std::optional<std::string> load() override;
  void save(const std::string& document) override;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path dir_;
  std::filesystem::path path_;
};

// Atomically replaces `path` with `content` (used by the journal and by the
// status file). Throws JournalError on failure.
void writeFileAtomically(const std::filesystem::path& path, const std::string& content,
                         unsigned mode = 0644);

}  // namespace hostmaint::agent
