// registry.cc - which backends this platform builds, and how to make one.
// The Windows twin of linux/registry.cc: only IOCP is built here.
#include "backends.h"

namespace ww {

const char* backend_name(BackendId id) {
  switch (id) {
    case BackendId::kEpoll: return "epoll";
    case BackendId::kIoUring: return "io_uring";
    case BackendId::kIocp: return "iocp";
  }
  return "unknown";
}

Probe probe_backend(BackendId id) {
  switch (id) {
    case BackendId::kEpoll: return Probe{false, "epoll is a Linux backend; this build is for Windows"};
    case BackendId::kIoUring: return Probe{false, "io_uring is a Linux backend; this build is for Windows"};
    case BackendId::kIocp: return iocp_probe();
  }
  return Probe{false, "unknown backend"};
}

std::unique_ptr<Poller> create_poller(BackendId id, const BackendConfig& cfg, std::string* err) {
  switch (id) {
    case BackendId::kIocp: return iocp_create(cfg, err);
    case BackendId::kEpoll:
    case BackendId::kIoUring: break;
  }
  *err = std::string(backend_name(id)) + " is not built on this platform";
  return nullptr;
}

}  // namespace ww
