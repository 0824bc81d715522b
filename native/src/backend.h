// backend.h - the completion-shaped contract every I/O backend implements.
//
// whirlwind's I/O threads are written once (engine.cc) against this small
// interface.  A backend turns the platform's I/O into *completions*: the
// engine submits operations (start accepting, start receiving, send these
// bytes, close) and later gets back one Completion per finished operation
// from wait().  io_uring and IOCP are completion APIs already; the epoll
// backend makes the non-blocking call itself when a socket is ready and then
// reports the same completion, so the engine cannot tell them apart.
//
// Files: linux/epoll.cc, linux/io_uring.cc, win/iocp.cc (binding.gyp picks
// them per OS).  Every method is called only on the owning I/O thread,
// except wake(), which any thread may call.
//
// Rules every backend keeps:
//  1. At most one send is outstanding per connection.  send(c) owns
//     c->sending[c->send_off, c->sending.len) until it reports kSent with the
//     number of bytes written (all of them) or a negative error.
//  2. Receive buffers belong to the backend.  A kReceived completion lends one
//     (buf, data, res bytes) to the engine until release(buf).  The engine may
//     keep it lent for a long time (the ring into JS is full): a backend that
//     runs out of buffers simply stops receiving, which is how TCP
//     backpressure reaches the peer.  Nothing is dropped.
//  3. After close(c), the backend reports exactly one kClosed for c once no
//     operation of c is outstanding in the kernel; completions of c that
//     finish before then are still reported (the engine ignores or releases
//     them).  Only after kClosed may the engine reuse c.
//  4. No method blocks except wait(); no method throws, prints, or exits.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "conn.h"
#include "net.h"

namespace ww {

enum class BackendId : uint8_t { kEpoll = 1, kIoUring = 2, kIocp = 3 };

const char* backend_name(BackendId id);

enum class CompKind : uint8_t {
  kWake,      // wake() was called (the engine then looks at its inbox)
  kAccepted,  // sock: a new connected socket from the listener
  kAcceptError, // res = -error; the backend keeps accepting (it may pause briefly)
  kReceived,  // conn: res > 0 bytes at data, lent in buffer buf
  kRecvEnd,   // conn: res == 0 peer closed (EOF), res < 0 error; receiving stopped
  kSent,      // conn: res = bytes written (> 0, all that was asked) or -error
  kClosed,    // conn: close() finished; nothing of conn is outstanding any more
};

struct Completion {
  CompKind kind;
  uint16_t buf;        // kReceived: buffer id to release()
  int32_t res;
  Conn* conn;          // kReceived, kRecvEnd, kSent, kClosed
  const uint8_t* data; // kReceived
  sock_t sock;         // kAccepted
  uint32_t used;       // engine's own bookkeeping: bytes of data already consumed
};

// A completion with nothing but kind, connection and result set.
inline Completion completion_of(CompKind k, Conn* c, int32_t res) {
  Completion cp;
  cp.kind = k;
  cp.buf = 0;
  cp.res = res;
  cp.conn = c;
  cp.data = nullptr;
  cp.sock = kBadSock;
  cp.used = 0;
  return cp;
}

// Completions a backend made outside wait() (a send that finished at once, a
// close) or that did not fit the caller's array, handed out oldest first.
class CompletionQueue {
 public:
  void reserve(size_t n) { q_.reserve(n); }
  void push(const Completion& c) { q_.push_back(c); }
  bool empty() const { return head_ == q_.size(); }
  // Moves completions into out[n..cap); returns the new n.
  int take(Completion* out, int n, int cap) {
    while (n < cap && head_ < q_.size()) out[n++] = q_[head_++];
    if (head_ == q_.size()) {
      q_.clear();
      head_ = 0;
    }
    return n;
  }

 private:
  std::vector<Completion> q_;
  size_t head_ = 0;  // taken from the front by index: erasing per item would be quadratic
};

// A FIFO of connections linked through Conn::be_next and be_ptr (the
// previous one), for a backend's own lists (epoll's ready list, io_uring's
// starved list).  Membership is the caller's: it keeps a be_flags bit and
// calls push_back/remove only when that bit changes.
struct ConnList {
  Conn* head = nullptr;
  Conn* tail = nullptr;

  void push_back(Conn* c) {
    c->be_next = nullptr;
    c->be_ptr = tail;
    if (tail) tail->be_next = c;
    else head = c;
    tail = c;
  }

  void remove(Conn* c) {
    Conn* prev = static_cast<Conn*>(c->be_ptr);
    Conn* next = c->be_next;
    if (prev) prev->be_next = next;
    else head = next;
    if (next) next->be_ptr = prev;
    else tail = prev;
    c->be_next = nullptr;
    c->be_ptr = nullptr;
  }
};

struct BackendConfig {
  uint32_t thread_index = 0;
  uint32_t recv_buffer_bytes = 64 * 1024;
  uint32_t recv_buffer_count = 32;
};

// Probe result for one backend on this machine: available, or why not.
struct Probe {
  bool available = false;
  std::string reason;  // empty when available
};

class Poller {
 public:
  virtual ~Poller() = default;

  // Begin accepting connections on an already listening socket.  Completions:
  // kAccepted for each connection, kAcceptError for transient failures.
  virtual bool listen(sock_t lsock, std::string* err) = 0;
  // Stop accepting.  The engine closes the listening socket afterwards.
  virtual void stop_listen() = 0;
  // True while the backend still holds the listening socket after
  // stop_listen (io_uring: the accept request, which keeps the socket, and
  // so the port, alive until the kernel has ended it).  The I/O thread
  // waits for it before it exits, so that close() frees the port.
  virtual bool listen_ending() const { return false; }

  // Begin receiving on a newly adopted connection (kReceived until kRecvEnd).
  virtual bool start_recv(Conn* c, std::string* err) = 0;

  // Stop receiving on c until resume_recv(c): no kReceived for c meanwhile
  // (a receive already finished may still be reported).  Data stays in the
  // kernel's socket buffer, so TCP pushes back on that peer only.  Both are
  // idempotent; the engine calls them only for open connections.
  virtual void pause_recv(Conn* c) = 0;
  virtual void resume_recv(Conn* c) = 0;

  // Write c->sending from c->send_off to its end; one kSent when done.
  virtual void send(Conn* c) = 0;

  // Cancel everything outstanding for c and close its socket; one kClosed.
  virtual void close(Conn* c) = 0;

  // Give a receive buffer back (see rule 2).
  virtual void release(uint16_t buf) = 0;

  // Fill up to cap completions; block up to timeout_ms (-1: forever) when
  // there are none.  Returns the number filled (0 on timeout).
  virtual int wait(Completion* out, int cap, int timeout_ms) = 0;

  // Thread-safe: make the owning thread's wait() return a kWake soon.
  // Wakes are coalesced; one kWake may stand for many wake() calls.
  virtual void wake() = 0;
};

// Factories, one per backend file.  A backend that is not built on this
// platform reports itself unavailable with the reason.
Probe probe_backend(BackendId id);
std::unique_ptr<Poller> create_poller(BackendId id, const BackendConfig& cfg, std::string* err);

}  // namespace ww
