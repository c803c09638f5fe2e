#include "invocation.hpp"

namespace hostmaint::hook {

HookInvocation parseInvocation(const std::vector<std::string_view>& arguments) {
  HookInvocation invocation;
  const std::size_t count = arguments.size();
  if (count == 1 && (arguments[0] == "--help" || arguments[0] == "-h")) {
    invocation.kind = HookInvocation::Kind::help;
    return invocation;
  }

  // libvirt's own call, DOMAIN OPERATION SUBOP EXTRA, is read as such whatever
  // the domain is named ("--", "--cordon-file=x"); options only come in front
  // of it from a wrapper, and are taken only while three arguments are left.
  const bool libvirts_form = count == 4 && guardedOperation(arguments[1], arguments[2]);
  std::size_t i = 0;
  constexpr std::string_view kOption = "--cordon-file";
  while (i < count && !libvirts_form) {
    const std::string_view argument = arguments[i];
    if (argument == "--" && count - (i + 1) >= 3) {
      ++i;
      break;
    }
    if (argument == kOption && i + 1 < count && count - (i + 2) >= 3) {
      invocation.cordon_file = std::string(arguments[i + 1]);
      i += 2;
      continue;
    }
    if (argument.starts_with(std::string(kOption) + "=") && count - (i + 1) >= 3) {
      invocation.cordon_file = std::string(argument.substr(kOption.size() + 1));
      ++i;
      continue;
    }
    break;
  }

  const std::vector<std::string_view> positional(arguments.begin() + static_cast<long>(i),
                                                 arguments.end());
  if (positional.size() < 3) {
    invocation.error = "expected DOMAIN OPERATION SUBOP [EXTRA], got " +
                       std::to_string(positional.size()) + " argument" +
                       (positional.size() == 1 ? "" : "s");
    return invocation;
  }
  const auto guarded = guardedOperation(positional[1], positional[2]);
  // More than libvirt ever passes: a mistyped option in a wrapper
  // ("--cordonfile=..."), or a libvirt of the future. The former must not
  // quietly let everything through.
  const bool too_many = positional.size() > 4;
  if (!guarded && !(too_many && positional[0].starts_with("-"))) {
    invocation.kind = HookInvocation::Kind::pass;
    return invocation;
  }
  if (too_many) {
    invocation.error = "expected DOMAIN OPERATION SUBOP [EXTRA], got " +
                       std::to_string(positional.size()) + " arguments" +
                       (positional[0].starts_with("-")
                            ? " (unknown option '" + withoutControlCharacters(positional[0]) + "'?)"
                            : "");
    return invocation;
  }
  if (invocation.cordon_file.empty()) {
    invocation.error = "--cordon-file needs a path";
    return invocation;
  }
  invocation.kind = HookInvocation::Kind::decide;
  invocation.domain = std::string(positional[0]);
  invocation.operation = *guarded;
  return invocation;
}

}  // namespace hostmaint::hook
