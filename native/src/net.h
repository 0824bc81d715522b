// net.h - the few socket calls the backend-neutral engine needs, implemented
// once per platform (posix/net.cc, win/net.cc).  Backends do their own I/O.
#pragma once

#include <cstdint>
#include <string>

#ifdef _WIN32
#include <winsock2.h>
namespace ww {
using sock_t = SOCKET;
constexpr sock_t kBadSock = INVALID_SOCKET;
}  // namespace ww
#else
namespace ww {
using sock_t = int;
constexpr sock_t kBadSock = -1;
}  // namespace ww
#endif

namespace ww {

struct ListenResult {
  sock_t sock = kBadSock;
  int port = 0;       // the bound port (the ephemeral one when 0 was asked)
  int family = 0;     // 4 or 6
  std::string address;
};

// One-time process setup (WSAStartup on Windows).  Returns false with err set.
bool net_init(std::string* err);

// Resolve host (numeric address or name), bind, listen(backlog) a
// non-blocking socket with SO_REUSEADDR.  Returns false with a message
// ("listen 127.0.0.1:80: Permission denied") on failure.
bool net_listen(const std::string& host, int port, int backlog, bool ipv6_only,
                ListenResult* out, std::string* err);

// Peer address of a connected socket as text and port; family 4 or 6.
bool net_peer(sock_t s, char* addr, size_t addr_cap, int* port, int* family);

void net_close(sock_t s);
void net_set_nodelay(sock_t s);
// TCP keep-alive: probes after idle_ms of silence, then every interval_ms, 3
// times.  idle_ms 0 leaves the socket's default (off).
void net_set_keepalive(sock_t s, uint32_t idle_ms, uint32_t interval_ms);
// One best-effort, non-blocking send (a farewell frame to a socket that is
// about to be closed).  Returns bytes sent or -1.
long net_try_send(sock_t s, const uint8_t* p, size_t n);

// errno (POSIX) or WSAGetLastError (Windows) as a message.
std::string net_error_text(int code);

}  // namespace ww
