// A domain's <hostmaint:policy> metadata: written by whoever may edit the
// domain XML, so possibly hostile. Never throws; a policy it accepts passes
// the validator.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include "hostmaint/agent/policy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace hostmaint::agent;
  const std::string_view xml(reinterpret_cast<const char*>(data), size);
  const PolicyResult result = applyPolicyMetadata(DomainPolicy{}, xml);
  if (const auto* policy = std::get_if<DomainPolicy>(&result)) {
    if (validatePolicy(*policy)) __builtin_trap();
  }
  return 0;
}
