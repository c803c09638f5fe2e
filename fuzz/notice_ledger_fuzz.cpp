// The notice ledger (<state_dir>/notices.json): what was told to owners,
// read back after a restart. Bad documents throw NoticeLedgerError; a good
// one encodes stably.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "hostmaint/agent/notice.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace hostmaint::agent;
  const std::string_view document(reinterpret_cast<const char*>(data), size);
  std::string encoded;
  try {
    encoded = NoticeLedger::decode(document).encode();
  } catch (const NoticeLedgerError&) {
    return 0;
  }
  if (NoticeLedger::decode(encoded).encode() != encoded) __builtin_trap();
  return 0;
}
