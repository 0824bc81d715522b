// backends.h - the Linux backends' entry points, used by registry.cc only.
#pragma once

#include "../backend.h"

namespace ww {

Probe epoll_probe();
std::unique_ptr<Poller> epoll_create(const BackendConfig& cfg, std::string* err);

Probe uring_probe();
std::unique_ptr<Poller> uring_create(const BackendConfig& cfg, std::string* err);

}  // namespace ww
