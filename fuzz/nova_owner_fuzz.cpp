// Nova's <instance> metadata in a domain's XML, from which the owner and
// project shown in notices are read. Never throws.
#include <cstddef>
#include <cstdint>
#include <string>

#include "libvirt/domain_reader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string xml(reinterpret_cast<const char*>(data), size);
  const auto owner = hostmaint::hv::libvirt::parseNovaOwner(xml);
  if (owner.owner && owner.owner->empty()) __builtin_trap();
  if (owner.project && owner.project->empty()) __builtin_trap();
  return 0;
}
