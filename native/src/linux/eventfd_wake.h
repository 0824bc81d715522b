// eventfd_wake.h - the coalesced cross-thread wake-up of the Linux backends.
//
// wake() (any thread) writes the eventfd only when it flips the flag from 0
// to 1, so many wakes cost one write.  The owning thread must consume the
// eventfd's count *before* clearing the flag (docs/design.md, ring protocol
// rule 6): clearing first lets a wake that sets the flag after the clear and
// writes before the read have its write swallowed while its flag stays set,
// after which no wake ever writes again.  epoll reads the count itself
// (consume()); io_uring has a READ in flight that the kernel completes, and
// clears the flag when that completion arrives (consumed()).
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace ww {

class EventfdWake {
 public:
  EventfdWake() = default;
  EventfdWake(const EventfdWake&) = delete;
  EventfdWake& operator=(const EventfdWake&) = delete;
  ~EventfdWake() {
    if (fd_ >= 0) ::close(fd_);
  }

  // flags: extra eventfd flags (EFD_NONBLOCK for a fd read directly).
  bool open(int flags) {
    fd_ = eventfd(0, flags | EFD_CLOEXEC);
    return fd_ >= 0;
  }
  int fd() const { return fd_; }

  // Any thread.
  void wake() {
    if (!pending_.exchange(true, std::memory_order_seq_cst)) {
      uint64_t one = 1;
      ssize_t r = ::write(fd_, &one, sizeof one);
      (void)r;
    }
  }

  // Owning thread: read the count, then clear the flag.
  void consume() {
    uint64_t v;
    ssize_t r = ::read(fd_, &v, sizeof v);
    (void)r;
    consumed();
  }

  // Owning thread: the count was already read (io_uring's READ completed).
  void consumed() { pending_.store(false, std::memory_order_seq_cst); }

 private:
  int fd_ = -1;
  std::atomic<bool> pending_{false};
};

}  // namespace ww
