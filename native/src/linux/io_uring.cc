// io_uring.cc - placeholder until the io_uring backend lands (issue 4).
// It reports itself unavailable, with the reason, so the engine falls back
// to epoll and the test suite reports io_uring as skipped.
#include "backends.h"

namespace ww {

Probe uring_probe() { return Probe{false, "the io_uring backend is not built yet"}; }

std::unique_ptr<Poller> uring_create(const BackendConfig&, std::string* err) {
  *err = "the io_uring backend is not built yet";
  return nullptr;
}

}  // namespace ww
