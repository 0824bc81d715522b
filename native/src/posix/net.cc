// net.cc (POSIX) - listening sockets and peer names for the engine.
#include "../net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

namespace ww {

bool net_init(std::string*) { return true; }

std::string net_error_text(int code) {
  char buf[128];
  // GNU strerror_r returns the message (possibly not in buf).
  const char* m = strerror_r(code, buf, sizeof buf);
  return m ? std::string(m) : std::to_string(code);
}

static std::string where(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

bool net_listen(const std::string& host, int port, int backlog, bool ipv6_only,
                ListenResult* out, std::string* err) {
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  struct addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) {
    *err = "listen " + where(host, port) + ": cannot resolve host: " + gai_strerror(rc);
    return false;
  }
  int last = 0;
  for (struct addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ai->ai_family == AF_INET6) {
      int v = ipv6_only ? 1 : 0;
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof v);
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, backlog) != 0) {
      last = errno;
      close(fd);
      continue;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &sl);
    char text[INET6_ADDRSTRLEN] = {0};
    if (ss.ss_family == AF_INET6) {
      auto* a = reinterpret_cast<struct sockaddr_in6*>(&ss);
      inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
      out->port = ntohs(a->sin6_port);
      out->family = 6;
    } else {
      auto* a = reinterpret_cast<struct sockaddr_in*>(&ss);
      inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
      out->port = ntohs(a->sin_port);
      out->family = 4;
    }
    out->sock = fd;
    out->address = text;
    freeaddrinfo(res);
    return true;
  }
  freeaddrinfo(res);
  *err = "listen " + where(host, port) + ": " + net_error_text(last ? last : EADDRNOTAVAIL);
  return false;
}

bool net_peer(sock_t s, char* addr, size_t cap, int* port, int* family) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getpeername(s, reinterpret_cast<struct sockaddr*>(&ss), &sl) != 0) {
    addr[0] = 0;
    *port = 0;
    *family = 0;
    return false;
  }
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<struct sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, addr, socklen_t(cap));
    *port = ntohs(a->sin6_port);
    *family = 6;
  } else {
    auto* a = reinterpret_cast<struct sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, addr, socklen_t(cap));
    *port = ntohs(a->sin_port);
    *family = 4;
  }
  return true;
}

void net_close(sock_t s) {
  if (s >= 0) close(s);
}

void net_set_keepalive(sock_t s, uint32_t idle_ms, uint32_t interval_ms) {
  if (idle_ms == 0) return;
  int one = 1;
  int idle = int((idle_ms + 999) / 1000);
  int intvl = int((interval_ms + 999) / 1000);
  int cnt = 3;
  if (intvl < 1) intvl = 1;
  setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  setsockopt(s, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(s, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  setsockopt(s, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
}

long net_try_send(sock_t s, const uint8_t* p, size_t n) {
  ssize_t r = ::send(s, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
  return r < 0 ? -1 : long(r);
}

void net_set_nodelay(sock_t s) {
  int one = 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace ww
