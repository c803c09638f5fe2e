// The cordon as the libvirt hook sees it (docs/operations.md, "Cordon: the
// libvirt hook"): the file hostmaintd writes while a maintenance keeps new
// domains off this host, and the decision the hook takes from it for one
// start or incoming migration. Pure: no I/O here, so every row of the
// decision table is unit-tested; agent/hook/main.cpp does the reading.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace hostmaint::hook {

// The only format this hook understands; a file of a newer format counts as
// unreadable (refused), since its rules may differ in ways this hook cannot know.
inline constexpr int kCordonFormat = 1;

// A domain the admin let through the cordon (`hostmaintctl allow`), or one
// hostmaintd is restoring itself. Matched by name or by UUID.
struct CordonException {
  std::string name;
  std::string uuid;  // empty when the file gives none

  bool operator==(const CordonException&) const = default;
};

struct Cordon {
  bool cordoned = false;
  // What the refusal message shows; any may be empty.
  std::string host;
  std::string session_id;
  std::string phase;
  std::string window_start;
  std::string window_end;
  std::string reason;
  std::vector<CordonException> allowed;
  std::vector<CordonException> restoring;

  bool operator==(const Cordon&) const = default;
};

// The file's contents, or why they are not a cordon this hook understands
// ("invalid JSON: ...", "'cordoned' must be a boolean, not string",
// "format 2 is newer than this hook understands (1)"). Unknown keys are
// ignored; `format` and `cordoned` are required, every other key optional.
std::variant<Cordon, std::string> parseCordon(std::string_view text);

// What reading the cordon file gave (agent/hook/cordon_file.hpp reads it).
struct CordonFileRead {
  enum class State { missing, unreadable, read };
  State state = State::missing;
  std::string contents;  // when read
  std::string error;     // when unreadable: "not a regular file", "Permission denied", ...
};

// The two operations the hook decides; every other one is let through unasked.
enum class GuardedOperation { start, migrate_in };

// libvirt's `prepare begin` (before every start, restores and incoming
// migrations included) and `migrate begin` (before an incoming migration).
std::optional<GuardedOperation> guardedOperation(std::string_view operation,
                                                 std::string_view sub_operation);

struct HookDomain {
  std::string name;  // as libvirt passes it (argv[1])
  std::string uuid;  // from the domain XML on stdin; empty when not found
};

struct HookVerdict {
  bool allowed = false;
  std::string message;  // one line for stderr (libvirt shows it to the caller); empty when allowed

  int exitStatus() const { return allowed ? 0 : 1; }
};

// The decision for `operation` on `domain`, given what reading `cordon_path` gave:
// - missing: allowed (hostmaint never cordoned this host, or is not installed);
// - unreadable or not understood: refused (fail closed: only hostmaintd writes
//   the file, and a host in maintenance must not take domains);
// - not cordoned: allowed;
// - cordoned: allowed for a domain in `restoring` or `allowed` (same name, or
//   same UUID), refused for any other, naming the maintenance and the way out.
HookVerdict decide(GuardedOperation operation, const HookDomain& domain,
                   std::string_view cordon_path, const CordonFileRead& file);

// The UUID of the top-level <uuid> element of a libvirt domain XML (the
// <domain> element's own child, not one nested deeper, as in <metadata>),
// or empty. A bounded scan, not an XML parser: it reads tags until that
// element and looks at no more than the first `limit` bytes.
std::string domainUuidFromXml(std::string_view xml, std::size_t limit = 1024 * 1024);

// `text` without control characters (C0, DEL, C1 as UTF-8), for anything
// echoed from the cordon file or the command line onto libvirt's error line.
std::string withoutControlCharacters(std::string_view text);

}  // namespace hostmaint::hook
