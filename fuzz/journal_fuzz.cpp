// The journal on disk as a restarted hostmaintd reads it: a snapshot
// (state.json) and its log (state.log), truncated, torn, edited or corrupted.
// The input is both files, split at the first "\n--log--\n" (none: no log).
// FileJournal::load must return a document or throw JournalError; a document
// it returns splits into parts and renders back to the same text, and one
// more save and load (a snapshot) give the same document again.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "hostmaint/agent/journal.hpp"

namespace {

const std::filesystem::path& directory() {
  static const std::filesystem::path dir = [] {
    std::string pattern = (std::filesystem::temp_directory_path() / "journal-fuzz-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) __builtin_trap();
    return std::filesystem::path(pattern);
  }();
  return dir;
}

void put(const std::filesystem::path& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace hostmaint::agent;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  constexpr std::string_view kSeparator = "\n--log--\n";
  const std::size_t split = input.find(kSeparator);
  const std::filesystem::path& dir = directory();
  std::filesystem::remove(dir / "state.log");
  put(dir / "state.json", input.substr(0, split));
  if (split != std::string_view::npos) put(dir / "state.log", input.substr(split + kSeparator.size()));

  std::string document;
  {
    FileJournal journal(dir);
    try {
      const auto loaded = journal.load();
      if (!loaded) __builtin_trap();  // state.json exists
      document = *loaded;
    } catch (const JournalError&) {
      return 0;
    }
    if (JournalDocument::parse(document, "fuzz").render() != document) __builtin_trap();
    // A save of nothing new writes the same document as a snapshot.
    JournalUpdate same;
    same.header = JournalDocument::parse(document, "fuzz").header();
    journal.save(same);
  }
  FileJournal again(dir);
  const auto reloaded = again.load();
  if (!reloaded || *reloaded != document) __builtin_trap();
  return 0;
}
