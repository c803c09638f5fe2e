// hostmaint-libvirt-hook: libvirt's qemu hook that keeps domains off a host
// hostmaintd has cordoned for maintenance (docs/operations.md, "Cordon: the
// libvirt hook"). libvirtd runs it synchronously for every domain operation
// and waits, so it reads little, takes no locks, talks to no daemon, and
// cannot outlive kTimeLimitSeconds. It writes nothing to stdout: for
// `migrate begin` libvirt would take stdout as a replacement domain XML.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <string_view>
#include <vector>

#include "cordon.hpp"
#include "cordon_file.hpp"
#include "invocation.hpp"

namespace {

// The safety net: killed by SIGALRM is a non-zero exit, so libvirt refuses
// the operation (safe) instead of waiting forever for a hook stuck on I/O.
constexpr unsigned kTimeLimitSeconds = 5;
// The domain XML is read to its end, up to this much; its <uuid> is near
// the top, so only the beginning is kept.
constexpr std::size_t kMaxInputBytes = 16 * 1024 * 1024;
constexpr std::size_t kKeptInputBytes = 1024 * 1024;

void printLine(const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); }

}  // namespace

int main(int argc, char** argv) {
  using namespace hostmaint::hook;
  ::signal(SIGALRM, SIG_DFL);
  ::alarm(kTimeLimitSeconds);
  try {
    const std::string xml = drainInput(STDIN_FILENO, kKeptInputBytes, kMaxInputBytes);
    const HookInvocation invocation =
        parseInvocation(std::vector<std::string_view>(argv + 1, argv + argc));
    switch (invocation.kind) {
      case HookInvocation::Kind::help:
        std::fputs(kUsage.data(), stdout);
        return 0;
      case HookInvocation::Kind::pass:
        return 0;
      case HookInvocation::Kind::usage_error:
        std::fprintf(stderr, "hostmaint libvirt-hook: %s\n%s", invocation.error.c_str(),
                     kUsage.data());
        return 2;
      case HookInvocation::Kind::decide:
        break;
    }
    const HookDomain domain{invocation.domain, domainUuidFromXml(xml)};
    const HookVerdict verdict = decide(invocation.operation, domain, invocation.cordon_file,
                                       readCordonFile(invocation.cordon_file));
    if (!verdict.message.empty()) printLine(verdict.message);
    return verdict.exitStatus();
  } catch (const std::exception& error) {
    // Out of memory, most likely; refusing is the safe answer.
    printLine(std::string("hostmaint libvirt-hook: ") + error.what() + "; refused");
    return 1;
  }
}
