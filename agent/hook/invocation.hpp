// The hook's command line: what libvirt passes (DOMAIN OPERATION SUBOP
// EXTRA), optionally after `--cordon-file PATH` from a wrapper script. Pure,
// so the rules for odd command lines are unit-tested.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cordon.hpp"

namespace hostmaint::hook {

inline constexpr std::string_view kDefaultCordonFile = "/var/lib/hostmaint/cordon.json";

inline constexpr std::string_view kUsage =
    "usage: libvirt-hook [--cordon-file PATH] DOMAIN OPERATION SUBOP [EXTRA]\n"
    "libvirt's qemu hook for hostmaint: refuses `prepare begin` (a start) and\n"
    "`migrate begin` (an incoming migration) while hostmaintd has cordoned this\n"
    "host; every other operation is let through. Exit status: 0 allowed, 1 refused,\n"
    "2 usage error. Default cordon file: /var/lib/hostmaint/cordon.json\n"
    "(docs/operations.md, \"Cordon: the libvirt hook\").\n";

struct HookInvocation {
  enum class Kind {
    decide,       // a guarded operation: read the cordon file and decide
    pass,         // an operation the hook does not decide: exit 0
    usage_error,  // exit 2 with `error`
    help,         // print kUsage, exit 0
  };
  Kind kind = Kind::usage_error;
  std::string cordon_file{kDefaultCordonFile};
  std::string domain;
  GuardedOperation operation = GuardedOperation::start;
  std::string error;
};

// `arguments` without the program name. Four arguments of which the second
// and third are a guarded operation are libvirt's own call, with no option,
// so a domain named "--", "--cordon-file" or "--cordon-file=x" is still a
// domain; otherwise options are taken in front, while three arguments are
// left after them. An operation the hook does
// not decide passes even when the rest is odd (a future libvirt must never
// be refused a `release` or a `started` because of it); a guarded one with
// a command line that is not understood is a usage error, and refused.
HookInvocation parseInvocation(const std::vector<std::string_view>& arguments);

}  // namespace hostmaint::hook
