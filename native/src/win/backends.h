// backends.h - the Windows backend's entry points, used by registry.cc only.
#pragma once

#include "../backend.h"

namespace ww {

Probe iocp_probe();
std::unique_ptr<Poller> iocp_create(const BackendConfig& cfg, std::string* err);

}  // namespace ww
