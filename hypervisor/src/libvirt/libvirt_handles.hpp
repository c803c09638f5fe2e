// RAII owners for libvirt handles and the thread-local error text.
#pragma once

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <memory>
#include <string>

namespace hostmaint::hv::libvirt {

struct ConnectionCloser {
  void operator()(virConnectPtr conn) const { virConnectClose(conn); }
};
struct DomainFreer {
  void operator()(virDomainPtr dom) const { virDomainFree(dom); }
};
struct CStringFreer {
  void operator()(char* s) const { free(s); }  // NOLINT: libvirt allocates with malloc
};

using Connection = std::unique_ptr<virConnect, ConnectionCloser>;
using Domain = std::unique_ptr<virDomain, DomainFreer>;
using CString = std::unique_ptr<char, CStringFreer>;
// Shared by the io thread and workers: virConnectPtr is thread-safe, and the
// test driver keeps its state per connection, so every call uses this one.
using SharedConnection = std::shared_ptr<virConnect>;

// libvirt's last error on the calling thread; call on the thread that failed.
inline std::string lastError() {
  const char* msg = virGetLastErrorMessage();
  return msg ? msg : "unknown libvirt error";
}

inline int lastErrorCode() {
  virErrorPtr err = virGetLastError();
  return err ? err->code : VIR_ERR_OK;
}

}  // namespace hostmaint::hv::libvirt
