// registry.cc - which backends this platform builds, and how to make one.
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
    case BackendId::kEpoll: return epoll_probe();
    case BackendId::kIoUring: return uring_probe();
    case BackendId::kIocp: return Probe{false, "iocp is the Windows backend; this build is for Linux"};
  }
  return Probe{false, "unknown backend"};
}

std::unique_ptr<Poller> create_poller(BackendId id, const BackendConfig& cfg, std::string* err) {
  switch (id) {
    case BackendId::kEpoll: return epoll_create(cfg, err);
    case BackendId::kIoUring: return uring_create(cfg, err);
    case BackendId::kIocp: break;
  }
  *err = std::string(backend_name(id)) + " is not built on this platform";
  return nullptr;
}

}  // namespace ww
