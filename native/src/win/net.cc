// net.cc (Windows) - the few Winsock calls the engine needs (net.h).
//
// Sockets are made with WSA_FLAG_OVERLAPPED (the IOCP backend needs
// overlapped handles) and WSA_FLAG_NO_HANDLE_INHERIT (a child process must
// not keep a listening port alive).
#include "../net.h"

#include <winsock2.h>
#include <ws2tcpip.h>
#include <mstcpip.h>
#include <windows.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace ww {

namespace {

std::once_flag g_wsa_once;
int g_wsa_error = 0;

// WSA_FLAG_NO_HANDLE_INHERIT is refused (WSAEINVAL) by Windows 7 without
// SP1; retry without it there rather than fail.
SOCKET make_socket(int family) {
  SOCKET s = WSASocketW(family, SOCK_STREAM, IPPROTO_TCP, nullptr, 0,
                        WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  if (s == INVALID_SOCKET && WSAGetLastError() == WSAEINVAL)
    s = WSASocketW(family, SOCK_STREAM, IPPROTO_TCP, nullptr, 0, WSA_FLAG_OVERLAPPED);
  return s;
}

bool addr_text(const sockaddr* sa, char* out, size_t cap, int* port, int* family) {
  if (cap == 0) return false;
  out[0] = '\0';
  if (sa->sa_family == AF_INET) {
    const sockaddr_in* a = reinterpret_cast<const sockaddr_in*>(sa);
    if (!inet_ntop(AF_INET, const_cast<in_addr*>(&a->sin_addr), out, cap)) return false;
    *port = ntohs(a->sin_port);
    *family = 4;
    return true;
  }
  if (sa->sa_family == AF_INET6) {
    const sockaddr_in6* a = reinterpret_cast<const sockaddr_in6*>(sa);
    if (!inet_ntop(AF_INET6, const_cast<in6_addr*>(&a->sin6_addr), out, cap)) return false;
    *port = ntohs(a->sin6_port);
    *family = 6;
    return true;
  }
  return false;
}

std::string host_port(const std::string& host, int port) {
  std::string h = host.empty() ? std::string("*") : host;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";
  return h + ":" + std::to_string(port);
}

}  // namespace

bool net_init(std::string* err) {
  std::call_once(g_wsa_once, [] {
    WSADATA d;
    g_wsa_error = WSAStartup(MAKEWORD(2, 2), &d);
  });
  if (g_wsa_error != 0) {
    if (err) *err = "WSAStartup: " + net_error_text(g_wsa_error);
    return false;
  }
  return true;
}

bool net_listen(const std::string& host, int port, int backlog, bool ipv6_only,
                ListenResult* out, std::string* err) {
  if (!net_init(err)) return false;
  if (port < 0 || port > 65535) {
    *err = "listen " + host_port(host, port) + ": port out of range";
    return false;
  }
  addrinfo hints;
  std::memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  char portbuf[16];
  std::snprintf(portbuf, sizeof portbuf, "%d", port);
  addrinfo* res = nullptr;
  int gai = getaddrinfo(host.empty() ? nullptr : host.c_str(), portbuf, &hints, &res);
  if (gai != 0 || !res) {
    *err = "listen " + host_port(host, port) + ": cannot resolve host: " +
           net_error_text(gai ? gai : WSAHOST_NOT_FOUND);
    return false;
  }
  int last = 0;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    SOCKET s = make_socket(ai->ai_family);
    if (s == INVALID_SOCKET) {
      last = WSAGetLastError();
      continue;
    }
    // Windows' SO_REUSEADDR lets another socket steal a bound port, which is
    // not what the POSIX option means; Windows already allows binding over
    // TIME_WAIT connections.  SO_EXCLUSIVEADDRUSE gives the POSIX meaning.
    BOOL on = TRUE;
    setsockopt(s, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, reinterpret_cast<const char*>(&on), sizeof on);
    if (ai->ai_family == AF_INET6) {
      DWORD v6only = ipv6_only ? 1 : 0;
      setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, reinterpret_cast<const char*>(&v6only), sizeof v6only);
    }
    u_long nb = 1;
    if (bind(s, ai->ai_addr, int(ai->ai_addrlen)) != 0 ||
        listen(s, backlog > 0 ? backlog : SOMAXCONN) != 0 ||
        ioctlsocket(s, FIONBIO, &nb) != 0) {
      last = WSAGetLastError();
      closesocket(s);
      continue;
    }
    sockaddr_storage ss;
    int sl = sizeof ss;
    char text[INET6_ADDRSTRLEN + 1];
    int fam = 0, bound = 0;
    if (getsockname(s, reinterpret_cast<sockaddr*>(&ss), &sl) != 0 ||
        !addr_text(reinterpret_cast<sockaddr*>(&ss), text, sizeof text, &bound, &fam)) {
      last = WSAGetLastError();
      closesocket(s);
      continue;
    }
    freeaddrinfo(res);
    out->sock = s;
    out->port = bound;
    out->family = fam;
    out->address = text;
    return true;
  }
  freeaddrinfo(res);
  *err = "listen " + host_port(host, port) + ": " + net_error_text(last ? last : WSAEAFNOSUPPORT);
  return false;
}

bool net_peer(sock_t s, char* addr, size_t addr_cap, int* port, int* family) {
  sockaddr_storage ss;
  int sl = sizeof ss;
  if (getpeername(s, reinterpret_cast<sockaddr*>(&ss), &sl) == 0 &&
      addr_text(reinterpret_cast<sockaddr*>(&ss), addr, addr_cap, port, family))
    return true;
  if (addr_cap) addr[0] = '\0';
  *port = 0;
  *family = 0;
  return false;
}

void net_close(sock_t s) {
  if (s != INVALID_SOCKET) closesocket(s);
}

// SIO_KEEPALIVE_VALS takes the idle time and interval in milliseconds and
// works on every Windows; the probe count is fixed (10) unless TCP_KEEPCNT
// (Windows 10 1703 and newer) takes the 3 that POSIX builds use.
void net_set_keepalive(sock_t s, uint32_t idle_ms, uint32_t interval_ms) {
  if (idle_ms == 0) return;
  tcp_keepalive ka;
  ka.onoff = 1;
  ka.keepalivetime = idle_ms;
  ka.keepaliveinterval = interval_ms ? interval_ms : 1000;
  DWORD got = 0;
  WSAIoctl(s, SIO_KEEPALIVE_VALS, &ka, sizeof ka, nullptr, 0, &got, nullptr, nullptr);
#ifndef TCP_KEEPCNT
  const int TCP_KEEPCNT = 16;  // ws2ipdef.h (not in older SDKs or mingw-w64)
#endif
  DWORD cnt = 3;
  setsockopt(s, IPPROTO_TCP, TCP_KEEPCNT, reinterpret_cast<const char*>(&cnt), sizeof cnt);
}

// The socket may still be in blocking mode (an AcceptEx socket not yet
// adopted): make it non-blocking first, it is about to be closed anyway.
long net_try_send(sock_t s, const uint8_t* p, size_t n) {
  u_long nb = 1;
  ioctlsocket(s, FIONBIO, &nb);
  int len = n > 0x7fffffff ? 0x7fffffff : int(n);
  int r = ::send(s, reinterpret_cast<const char*>(p), len, 0);
  return r == SOCKET_ERROR ? -1 : long(r);
}

void net_set_nodelay(sock_t s) {
  BOOL on = TRUE;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&on), sizeof on);
}

// The POSIX wording (glibc's strerror) for the errors a server meets, so a
// message reads the same on every platform ("listen 127.0.0.1:80: Address
// already in use"); the Winsock code follows in parentheses.  Anything else
// gets the system's own message.
static const char* posix_text(int code) {
  switch (code) {
    case WSAEINTR: return "Interrupted system call";
    case WSAEACCES: return "Permission denied";
    case WSAEFAULT: return "Bad address";
    case WSAEINVAL: return "Invalid argument";
    case WSAEMFILE: return "Too many open files";
    case WSAEWOULDBLOCK: return "Resource temporarily unavailable";
    case WSAENOTSOCK: return "Socket operation on non-socket";
    case WSAEMSGSIZE: return "Message too long";
    case WSAEPROTONOSUPPORT: return "Protocol not supported";
    case WSAEAFNOSUPPORT: return "Address family not supported by protocol";
    case WSAEADDRINUSE: return "Address already in use";
    case WSAEADDRNOTAVAIL: return "Cannot assign requested address";
    case WSAENETDOWN: return "Network is down";
    case WSAENETUNREACH: return "Network is unreachable";
    case WSAENETRESET: return "Network dropped connection on reset";
    case WSAECONNABORTED: return "Software caused connection abort";
    case WSAECONNRESET: return "Connection reset by peer";
    case WSAENOBUFS: return "No buffer space available";
    case WSAEISCONN: return "Transport endpoint is already connected";
    case WSAENOTCONN: return "Transport endpoint is not connected";
    case WSAESHUTDOWN: return "Cannot send after transport endpoint shutdown";
    case WSAETIMEDOUT: return "Connection timed out";
    case WSAECONNREFUSED: return "Connection refused";
    case WSAEHOSTUNREACH: return "No route to host";
    case WSA_OPERATION_ABORTED: return "Operation canceled";
    case WSAHOST_NOT_FOUND: return "Name or service not known";
    case WSATRY_AGAIN: return "Temporary failure in name resolution";
    case WSANO_DATA: return "No address associated with hostname";
  }
  return nullptr;
}

std::string net_error_text(int code) {
  if (const char* t = posix_text(code)) return std::string(t) + " (" + std::to_string(code) + ")";
  char buf[512];
  DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr,
                           DWORD(code), MAKELANGID(LANG_ENGLISH, SUBLANG_DEFAULT), buf,
                           sizeof buf, nullptr);
  if (n == 0)
    n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr,
                       DWORD(code), 0, buf, sizeof buf, nullptr);
  // System messages end in ".\r\n"; the callers add their own context.
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '.')) n--;
  if (n == 0) return "error " + std::to_string(code);
  return std::string(buf, n) + " (" + std::to_string(code) + ")";
}

}  // namespace ww
