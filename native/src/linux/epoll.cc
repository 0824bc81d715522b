// epoll.cc - the readiness backend, dressed as a completion backend.
//
// epoll says "ready"; the contract speaks of finished operations.  So this
// file does the non-blocking call itself when a socket is ready and reports
// the same Completion an io_uring or IOCP backend would:
//   - readable sockets sit on a ready list; wait() reads each once per turn
//     into a free buffer from a fixed pool (kReceived), which keeps one busy
//     connection from starving the others and bounds memory;
//   - when the pool is empty (the engine holds buffers while the ring into
//     JS is full), nothing is read: the kernel's socket buffers fill and TCP
//     pushes back on the peer;
//   - send() writes until done or EAGAIN, then finishes on EPOLLOUT (kSent);
//   - close() closes the socket at once and reports kClosed on the next wait.
// Sockets are registered once, edge-triggered, for IN|OUT|RDHUP.
#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <vector>

#include "eventfd_wake.h"
#include "backends.h"

namespace ww {

namespace {

// Conn::be_flags bits used by this backend.
constexpr uint32_t kReadable = 1u << 0;   // on the ready list
constexpr uint32_t kWantWrite = 1u << 1;  // a send waits for EPOLLOUT
constexpr uint32_t kRecvDone = 1u << 2;   // EOF or error reported
constexpr uint32_t kPaused = 1u << 3;     // pause_recv: do not read
constexpr uint32_t kMissed = 1u << 4;     // readable while paused (edge remembered)
constexpr uint32_t kPeerEnded = 1u << 5;  // EPOLLRDHUP/HUP/ERR seen: read on to the EOF or error

int64_t now_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

class EpollPoller final : public Poller {
 public:
  ~EpollPoller() override {
    if (ep_ >= 0) ::close(ep_);
    std::free(bufs_);
  }

  bool init(const BackendConfig& cfg, std::string* err) {
    buf_size_ = cfg.recv_buffer_bytes;
    uint32_t count = cfg.recv_buffer_count;
    if (count > 65535) count = 65535;
    bufs_ = static_cast<uint8_t*>(std::malloc(size_t(buf_size_) * count));
    if (!bufs_) {
      *err = "epoll: out of memory for receive buffers";
      return false;
    }
    for (uint32_t i = count; i > 0; --i) free_.push_back(uint16_t(i - 1));
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0 || !wake_.open(EFD_NONBLOCK)) {
      *err = "epoll: " + net_error_text(errno);
      return false;
    }
    struct epoll_event ev;
    ev.events = EPOLLIN;
    ev.data.ptr = &wake_;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, wake_.fd(), &ev) != 0) {
      *err = "epoll: " + net_error_text(errno);
      return false;
    }
    pending_.reserve(256);
    return true;
  }

  bool listen(sock_t lsock, std::string* err) override {
    lfd_ = lsock;
    struct epoll_event ev;
    ev.events = EPOLLIN;  // level-triggered: what we leave unaccepted is reported again
    ev.data.ptr = &lfd_;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, lfd_, &ev) != 0) {
      *err = net_error_text(errno);
      lfd_ = -1;
      return false;
    }
    return true;
  }

  void stop_listen() override {
    if (lfd_ >= 0 && !accept_paused_) epoll_ctl(ep_, EPOLL_CTL_DEL, lfd_, nullptr);
    lfd_ = -1;
    accept_paused_ = false;
  }

  bool start_recv(Conn* c, std::string* err) override {
    c->be_flags = 0;
    c->be_next = nullptr;
    c->be_ptr = nullptr;
    struct epoll_event ev;
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = c;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, c->sock, &ev) != 0) {
      *err = net_error_text(errno);
      return false;
    }
    return true;
  }

  void pause_recv(Conn* c) override {
    if (c->be_flags & kPaused) return;
    c->be_flags |= kPaused;
    if (c->be_flags & kReadable) {
      unready(c);
      c->be_flags |= kMissed;
    }
  }

  void resume_recv(Conn* c) override {
    if (!(c->be_flags & kPaused)) return;
    c->be_flags &= ~kPaused;
    // Edge-triggered: an edge that came while paused will not come again.
    if ((c->be_flags & kMissed) && !(c->be_flags & kRecvDone)) make_ready(c);
    c->be_flags &= ~kMissed;
  }

  void send(Conn* c) override {
    c->be_flags &= ~kWantWrite;
    write_some(c);
  }

  void close(Conn* c) override {
    unready(c);
    if (c->be_flags & kWantWrite) {
      c->be_flags &= ~kWantWrite;
      push(CompKind::kSent, c, -ECANCELED);
    }
    if (c->sock >= 0) {
      ::close(c->sock);  // also leaves the epoll set
      c->sock = -1;
    }
    push(CompKind::kClosed, c, 0);
  }

  void release(uint16_t buf) override { free_.push_back(buf); }

  int wait(Completion* out, int cap, int timeout_ms) override {
    int n = 0;
    // 1. Completions made earlier (sends that finished at once, closes).
    n = pending_.take(out, n, cap);

    // 2. Readiness.  Do not sleep if there is already something to report or
    //    ready sockets we can read now.
    int t = timeout_ms;
    if (n > 0 || !pending_.empty() || (ready_.head && !free_.empty())) t = 0;
    if (accept_paused_) {
      int64_t left = accept_resume_at_ - now_ms();
      if (left <= 0) {
        resume_accept();
      } else if (t < 0 || left < t) {
        t = int(left);
      }
    }
    if (n < cap) {
      struct epoll_event evs[256];
      int ne = epoll_wait(ep_, evs, 256, t);
      for (int i = 0; i < ne; ++i) {
        void* p = evs[i].data.ptr;
        uint32_t e = evs[i].events;
        if (p == &wake_) {
          // Read, then clear (eventfd_wake.h); the engine reads its inbox
          // after we return.
          wake_.consume();
          if (n < cap) out[n++] = completion_of(CompKind::kWake, nullptr, 0);
          else push(CompKind::kWake, nullptr, 0);
          continue;
        }
        if (p == &lfd_) {
          n = accept_some(out, n, cap);
          continue;
        }
        Conn* c = static_cast<Conn*>(p);
        if ((e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !(c->be_flags & kRecvDone)) {
          if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->be_flags |= kPeerEnded;
          if (c->be_flags & kPaused) c->be_flags |= kMissed;
          else make_ready(c);
        }
        if ((e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && (c->be_flags & kWantWrite)) {
          c->be_flags &= ~kWantWrite;
          write_some(c);
        }
      }
      // Sends finished by EPOLLOUT above.
      n = pending_.take(out, n, cap);
    }

    // 3. Read each ready socket once, while buffers last.
    Conn* stop_at = nullptr;
    while (n < cap && ready_.head && !free_.empty()) {
      Conn* c = ready_.head;
      if (c == stop_at) break;
      uint16_t b = free_.back();
      uint8_t* data = bufs_ + size_t(b) * buf_size_;
      ssize_t r = ::recv(c->sock, data, buf_size_, MSG_DONTWAIT);
      if (r > 0) {
        free_.pop_back();
        Completion& cp = out[n++];
        cp = completion_of(CompKind::kReceived, c, int32_t(r));
        cp.buf = b;
        cp.data = data;
        if (size_t(r) < buf_size_ && !(c->be_flags & kPeerEnded)) {
          // A short read drained the socket; edge-triggered epoll reports new
          // data with a new edge.  Not so the end: a FIN or RST that came
          // with the data (the event said EPOLLRDHUP/HUP/ERR) gives no new
          // edge, so then the connection stays ready and the next read
          // returns the EOF or the error.
          unready(c);
        } else {
          // Maybe more: go to the back of the line (fairness).
          unready(c);
          make_ready(c);
          if (!stop_at) stop_at = c;
        }
      } else if (r == 0) {
        unready(c);
        c->be_flags |= kRecvDone;
        out[n++] = completion_of(CompKind::kRecvEnd, c, 0);
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        unready(c);
      } else if (errno == EINTR) {
        continue;
      } else {
        int err = errno;
        unready(c);
        c->be_flags |= kRecvDone;
        out[n++] = completion_of(CompKind::kRecvEnd, c, -err);
      }
    }
    return n;
  }

  void wake() override { wake_.wake(); }

 private:
  void push(CompKind k, Conn* c, int32_t res) { pending_.push(completion_of(k, c, res)); }

  // Ready list membership: the kReadable bit.
  void make_ready(Conn* c) {
    if (c->be_flags & kReadable) return;
    c->be_flags |= kReadable;
    ready_.push_back(c);
  }

  void unready(Conn* c) {
    if (!(c->be_flags & kReadable)) return;
    c->be_flags &= ~kReadable;
    ready_.remove(c);
  }

  void write_some(Conn* c) {
    while (c->send_off < c->sending.len) {
      ssize_t r = ::send(c->sock, c->sending.data + c->send_off, c->sending.len - c->send_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      if (r > 0) {
        c->send_off += uint32_t(r);
      } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        c->be_flags |= kWantWrite;  // EPOLLOUT (edge) finishes it
        return;
      } else if (r < 0 && errno == EINTR) {
        continue;
      } else {
        push(CompKind::kSent, c, r < 0 ? -errno : -EPIPE);
        return;
      }
    }
    push(CompKind::kSent, c, int32_t(c->sending.len));
  }

  int accept_some(Completion* out, int n, int cap) {
    // Bounded per turn so one connect storm cannot starve established peers;
    // the listener is level-triggered, so the rest are reported again.
    for (int i = 0; i < 64 && n < cap && lfd_ >= 0; ++i) {
      int fd = accept4(lfd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        Completion& cp = out[n++];
        cp = completion_of(CompKind::kAccepted, nullptr, 0);
        cp.sock = fd;
        continue;
      }
      int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK) break;
      if (e == EINTR || e == ECONNABORTED || e == EPROTO) continue;
      // EMFILE, ENFILE, ENOBUFS, ENOMEM: the listener would stay readable and
      // spin us.  Step back for a moment and let connections close.
      out[n++] = completion_of(CompKind::kAcceptError, nullptr, -e);
      epoll_ctl(ep_, EPOLL_CTL_DEL, lfd_, nullptr);
      accept_paused_ = true;
      accept_resume_at_ = now_ms() + 100;
      break;
    }
    return n;
  }

  void resume_accept() {
    accept_paused_ = false;
    if (lfd_ < 0) return;
    struct epoll_event ev;
    ev.events = EPOLLIN;
    ev.data.ptr = &lfd_;
    epoll_ctl(ep_, EPOLL_CTL_ADD, lfd_, &ev);
  }

  int ep_ = -1;
  int lfd_ = -1;
  bool accept_paused_ = false;
  int64_t accept_resume_at_ = 0;
  EventfdWake wake_;
  uint8_t* bufs_ = nullptr;
  size_t buf_size_ = 0;
  std::vector<uint16_t> free_;
  CompletionQueue pending_;
  ConnList ready_;  // readable sockets, read once per wait() in turn
};

}  // namespace

Probe epoll_probe() {
  // epoll has been in every Linux kernel since 2.6; it is always available.
  return Probe{true, ""};
}

std::unique_ptr<Poller> epoll_create(const BackendConfig& cfg, std::string* err) {
  std::unique_ptr<EpollPoller> p(new EpollPoller());
  if (!p->init(cfg, err)) return nullptr;
  return p;
}

}  // namespace ww
