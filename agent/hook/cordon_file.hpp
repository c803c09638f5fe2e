// The hook's two reads, each bounded so that libvirtd, which waits for the
// hook, is never held up: the cordon file and the domain XML on stdin.
#pragma once

#include <cstddef>
#include <string>

#include "cordon.hpp"

namespace hostmaint::hook {

// hostmaintd's cordon file is a few KiB; anything larger is not its file.
inline constexpr std::size_t kMaxCordonFileBytes = 1024 * 1024;

// Opens `path` without blocking (O_NONBLOCK: a FIFO or a device put there
// must not hang the hook) and reads it when it is a regular file of at most
// kMaxCordonFileBytes. Missing (ENOENT) is `missing`; anything else that
// goes wrong is `unreadable`, with the reason.
CordonFileRead readCordonFile(const std::string& path);

// Reads `fd` to its end, at most `max_bytes`, and returns the first
// `keep_bytes` of it. libvirt writes the domain XML to the hook's stdin and
// would see EPIPE if the hook left without reading it. A terminal is not
// read (someone trying the hook by hand).
std::string drainInput(int fd, std::size_t keep_bytes, std::size_t max_bytes);

}  // namespace hostmaint::hook
