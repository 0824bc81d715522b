// iocp.cc - the Windows backend: I/O completion ports.
//
// One completion port per Poller, that is per I/O thread (backend.h: every
// method but wake() runs on the owning thread, so nothing here needs a lock).
// The thread waits in GetQueuedCompletionStatusEx and drains up to
// kMaxEntries packets per call, turning each into at most a few Completions.
//
// Completion keys and OVERLAPPED layout
// -------------------------------------
//   key kKeyWake     lpOverlapped == NULL   posted by wake()
//   key kKeyListener lpOverlapped -> IoOp   inside an AcceptOp
//   key kKeyConn     lpOverlapped -> IoOp   ConnIo::recv or ConnIo::send
//
//   IoOp  = { OVERLAPPED ov (first member) | kind | owner pointer }
//   ConnIo (heap, hung on Conn::be_ptr, one per adopted connection)
//         = { IoOp recv | IoOp send | Conn* | SOCKET | pending | list links }
//   AcceptOp (owned by the Poller, kAcceptPool of them while listening)
//         = { IoOp op | SOCKET accept socket | AcceptEx address buffer }
//
// The key only says which kind of handle a packet came from; the IoOp (found
// from the OVERLAPPED pointer, its first member) says which operation
// finished and who owns it.  An IoOp's memory stays valid until its packet is
// dequeued: ConnIo is freed only when its pending count reaches 0, AcceptOps
// only when the Poller is destroyed and every accept has come back.
//
// Receiving without holding memory: the zero-byte WSARecv
// ---------------------------------------------------------
// An idle connection holds no receive buffer.  start_recv posts a WSARecv
// with a zero-length buffer; it completes when data (or EOF, or an error)
// is there.  Only then does the thread take a buffer from the Poller's pool
// and call a non-blocking recv() into it (the socket is FIONBIO; overlapped
// calls ignore that mode).  A full pool parks the connection until release()
// returns a buffer (backend.h rule 2), so 100k idle connections cost 100k
// small ConnIo structs, not 100k x 64 KiB.  libuv's Windows TCP reads work
// the same way.  The cost is one extra system call per readiness, which
// FILE_SKIP_COMPLETION_PORT_ON_SUCCESS mostly pays back (below).
// pause_recv() leaves the zero-byte receive posted (it holds nothing) and
// only remembers that data is waiting; resume_recv() reads it then.
//
// FILE_SKIP_COMPLETION_PORT_ON_SUCCESS
// ------------------------------------
// Set on every socket whose provider is an IFS one (a non-IFS layered
// provider may lose completions in this mode, so those sockets keep the
// default).  In this mode a call that succeeds at once queues no packet: the
// code that made the call reports the completion itself.  A zero-byte
// WSARecv that succeeds at once puts the connection on the ready list, read
// at the next wait(); a WSASend that succeeds at once reports kSent through
// the backlog; an AcceptEx that succeeds at once is handled in the accept
// refill loop.  Without the mode, every success also queues a packet, so
// each call site checks `skip` before treating a success as final.
//
// Closing (backend.h rule 3)
// --------------------------
// close(c) marks the ConnIo closing, calls CancelIoEx on the socket and then
// closesocket (which would abort the operations anyway; CancelIoEx makes it
// explicit and does not depend on linger settings).  Aborted operations
// still queue their packets; each one decrements `pending`, and when it
// reaches 0 the Poller reports kClosed and frees the ConnIo.  A send that
// finishes while closing is still reported as kSent.
//
// Shutdown
// --------
// ~IocpPoller cancels every outstanding operation, drains the port until
// all of them have come back (bounded), frees the memory, and closes the
// port.  If the kernel has not returned an operation in time the memory it
// points at is leaked on purpose: freeing it would let the kernel write into
// freed memory.  The engine stops and joins the I/O threads; each thread's
// wait() returns on the kWake the engine sends it.
#include "backends.h"

#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

namespace ww {

namespace {

constexpr ULONG_PTR kKeyWake = 1;
constexpr ULONG_PTR kKeyListener = 2;
constexpr ULONG_PTR kKeyConn = 3;

constexpr int kMaxEntries = 64;     // packets drained per GetQueuedCompletionStatusEx
constexpr int kAcceptPool = 16;     // AcceptEx calls kept outstanding while listening
constexpr int kAcceptSyncBurst = 64;  // at-once AcceptEx successes handled per refill
constexpr int kAcceptRetryMs = 50;  // pause before re-posting after a resource failure
constexpr DWORD kDrainMs = 2000;    // how long the destructor waits for the kernel
constexpr DWORD kAddrLen = sizeof(sockaddr_in6) + 16;  // AcceptEx's per-address size

enum class OpKind : uint8_t { kRecv = 1, kSend = 2, kAccept = 3 };

struct ConnIo;
struct AcceptOp;

struct IoOp {
  OVERLAPPED ov;  // first member: the OVERLAPPED* in a packet is the IoOp*
  OpKind kind;
  ConnIo* conn;   // kRecv, kSend
  AcceptOp* acc;  // kAccept
};

enum class ListId : uint8_t { kNone = 0, kReady = 1, kParked = 2 };

struct ConnIo {
  IoOp recv;
  IoOp send;
  Conn* conn = nullptr;
  SOCKET sock = INVALID_SOCKET;
  uint8_t pending = 0;        // operations in the kernel (0..2)
  bool skip = false;          // FILE_SKIP_COMPLETION_PORT_ON_SUCCESS is set
  bool closing = false;
  bool recv_stopped = false;  // kRecvEnd reported
  bool send_busy = false;     // a send() is not yet reported (rule 1)
  bool recv_started = false;  // start_recv() was called
  bool paused = false;        // pause_recv: do not read
  bool missed = false;        // became readable while paused
  uint32_t send_done = 0;     // bytes of the current send written so far
  ListId list = ListId::kNone;
  ConnIo* prev = nullptr;     // ready / parked list links
  ConnIo* next = nullptr;
  ConnIo* all_prev = nullptr; // every live ConnIo, for the destructor
  ConnIo* all_next = nullptr;
};

struct AcceptOp {
  IoOp op;
  SOCKET sock = INVALID_SOCKET;
  bool posted = false;
  char addr[2 * kAddrLen];
};

// An intrusive FIFO of ConnIo (ready or parked); a ConnIo is on at most one.
struct ConnList {
  ConnIo* head = nullptr;
  ConnIo* tail = nullptr;
  ListId id;
  explicit ConnList(ListId i) : id(i) {}
  bool empty() const { return head == nullptr; }
  void push(ConnIo* c) {
    c->list = id;
    c->next = nullptr;
    c->prev = tail;
    if (tail) tail->next = c; else head = c;
    tail = c;
  }
  void remove(ConnIo* c) {
    if (c->prev) c->prev->next = c->next; else head = c->next;
    if (c->next) c->next->prev = c->prev; else tail = c->prev;
    c->prev = c->next = nullptr;
    c->list = ListId::kNone;
  }
  ConnIo* pop() {
    ConnIo* c = head;
    if (c) remove(c);
    return c;
  }
};

// NTSTATUS values found in OVERLAPPED::Internal, mapped to Winsock errors for
// operations whose socket is already closed (WSAGetOverlappedResult needs an
// open handle).  <ntstatus.h> clashes with <windows.h>, hence the literals.
int ntstatus_to_wsa(ULONG_PTR st) {
  switch (uint32_t(st)) {
    case 0x00000000u: return 0;
    case 0xC0000120u: return WSA_OPERATION_ABORTED;  // STATUS_CANCELLED
    case 0xC000020Du: return WSAECONNRESET;          // STATUS_CONNECTION_RESET
    case 0xC000020Cu: return WSAECONNRESET;          // STATUS_CONNECTION_DISCONNECTED
    case 0xC000013Cu: return WSAECONNRESET;          // STATUS_REMOTE_DISCONNECT
    case 0xC0000241u: return WSAECONNABORTED;        // STATUS_CONNECTION_ABORTED
    case 0xC000013Bu: return WSAECONNABORTED;        // STATUS_LOCAL_DISCONNECT
    case 0xC00000B0u: return WSAESHUTDOWN;           // STATUS_PIPE_DISCONNECTED
    case 0xC0000008u: return WSAENOTSOCK;            // STATUS_INVALID_HANDLE
    case 0xC000009Au: return WSAENOBUFS;             // STATUS_INSUFFICIENT_RESOURCES
    case 0xC0000017u: return WSAENOBUFS;             // STATUS_NO_MEMORY
    case 0xC00000B5u: return WSAETIMEDOUT;           // STATUS_IO_TIMEOUT
    case 0xC000023Cu: return WSAENETUNREACH;         // STATUS_NETWORK_UNREACHABLE
    case 0xC000023Du: return WSAEHOSTUNREACH;        // STATUS_HOST_UNREACHABLE
    case 0xC0000236u: return WSAECONNREFUSED;        // STATUS_CONNECTION_REFUSED
  }
  return WSAEFAULT;  // unknown; callers only log or close on it
}

bool is_cancel(int err) { return err == WSA_OPERATION_ABORTED || err == ERROR_OPERATION_ABORTED; }

// A non-IFS layered service provider can lose completions when
// FILE_SKIP_COMPLETION_PORT_ON_SUCCESS is set (the reason libuv checks
// XP1_IFS_HANDLES before using it); only IFS sockets get the mode.
bool set_skip_mode(SOCKET s) {
  WSAPROTOCOL_INFOW info;
  int len = sizeof info;
  if (getsockopt(s, SOL_SOCKET, SO_PROTOCOL_INFOW, reinterpret_cast<char*>(&info), &len) != 0)
    return false;
  if (!(info.dwServiceFlags1 & XP1_IFS_HANDLES)) return false;
  return SetFileCompletionNotificationModes(
             reinterpret_cast<HANDLE>(s),
             FILE_SKIP_COMPLETION_PORT_ON_SUCCESS | FILE_SKIP_SET_EVENT_ON_HANDLE) != FALSE;
}

class IocpPoller final : public Poller {
 public:
  IocpPoller(HANDLE port, const BackendConfig& cfg, bool use_skip) : port_(port), use_skip_(use_skip) {
    uint32_t count = cfg.recv_buffer_count;
    if (count < 1) count = 1;
    if (count > 0xffff) count = 0xffff;
    uint32_t bytes = cfg.recv_buffer_bytes;
    if (bytes < 512) bytes = 512;
    if (bytes > (16u << 20)) bytes = 16u << 20;
    buf_bytes_ = bytes;
    bufs_.assign(count, nullptr);
    lent_.assign(count, 0);
    free_.reserve(count);
    for (uint32_t i = count; i > 0; i--) free_.push_back(uint16_t(i - 1));
    backlog_.reserve(64);
  }

  ~IocpPoller() override;

  bool listen(sock_t lsock, std::string* err) override;
  void stop_listen() override;
  bool start_recv(Conn* c, std::string* err) override;
  void pause_recv(Conn* c) override;
  void resume_recv(Conn* c) override;
  void send(Conn* c) override;
  void close(Conn* c) override;
  void release(uint16_t buf) override;
  int wait(Completion* out, int cap, int timeout_ms) override;
  void wake() override;

 private:
  // --- reporting ----------------------------------------------------------
  // emit() writes into the caller's array while wait() runs and there is
  // room, and into the backlog otherwise (calls made outside wait(), or a
  // packet that produced more completions than were asked for).
  void emit(const Completion& c) {
    if (out_ && n_ < cap_) out_[n_++] = c;
    else backlog_.push(c);
  }
  void emit_conn(CompKind k, Conn* conn, int32_t res) { emit(completion_of(k, conn, res)); }

  // --- receive ------------------------------------------------------------
  void post_recv(ConnIo* io);
  void try_recv(ConnIo* io);
  bool take_buffer(uint16_t* id);
  // Every buffer that comes back wakes one parked connection, whether the
  // engine released it or a read found nothing to put in it.
  void give_back(uint16_t id) {
    lent_[id] = 0;
    free_.push_back(id);
    if (ConnIo* io = parked_.pop()) ready_.push(io);  // parked ones are never paused
  }

  // --- send ---------------------------------------------------------------
  void post_send(ConnIo* io);
  void send_finished(ConnIo* io, DWORD bytes, int err);

  // --- accept -------------------------------------------------------------
  enum class Post { kPending, kDone, kFailed };
  Post post_accept(AcceptOp* a, int* err);
  void accept_finished(AcceptOp* a, int err);
  void refill_accepts();

  // --- connections --------------------------------------------------------
  ConnIo* attach(Conn* c, std::string* err);
  void op_returned(ConnIo* io) {
    io->pending--;
    if (io->closing && io->pending == 0) finish(io);
  }
  void finish(ConnIo* io);
  void unlist(ConnIo* io) {
    if (io->list == ListId::kReady) ready_.remove(io);
    else if (io->list == ListId::kParked) parked_.remove(io);
  }
  int op_error(SOCKET s, IoOp* op);
  void handle_packet(const OVERLAPPED_ENTRY& e);

  HANDLE port_;
  bool use_skip_;  // FILE_SKIP_COMPLETION_PORT_ON_SUCCESS allowed (see iocp_create)
  std::atomic<bool> wake_pending_{false};
  bool wake_seen_ = false;  // a kWake was emitted in this wait()

  // wait()'s output while it runs.
  Completion* out_ = nullptr;
  int cap_ = 0;
  int n_ = 0;
  CompletionQueue backlog_;

  // Receive buffers (rule 2), allocated on first use.
  uint32_t buf_bytes_;
  std::vector<uint8_t*> bufs_;
  std::vector<uint8_t> lent_;
  std::vector<uint16_t> free_;

  ConnList ready_{ListId::kReady};    // zero-byte receive done, read at next wait()
  ConnList parked_{ListId::kParked};  // readable but the buffer pool is empty
  ConnIo* all_ = nullptr;

  // Listener.
  SOCKET lsock_ = INVALID_SOCKET;
  bool listening_ = false;
  bool listen_skip_ = false;
  int lfamily_ = AF_INET;
  LPFN_ACCEPTEX accept_ex_ = nullptr;
  std::vector<AcceptOp*> accepts_;
  bool accept_short_ = false;     // some AcceptOps are idle: refill at next wait()
  bool accept_retry_now_ = false; // ...without pausing (burst limit, not a failure)
  ULONGLONG accept_retry_at_ = 0;

  uint32_t inflight_ = 0;  // operations of this port in the kernel
};

IocpPoller::~IocpPoller() {
  // Cancel everything, then wait for the kernel to hand every OVERLAPPED
  // back before freeing the memory it points into.
  listening_ = false;
  if (lsock_ != INVALID_SOCKET) CancelIoEx(reinterpret_cast<HANDLE>(lsock_), nullptr);
  // Closing an accept socket aborts the AcceptEx that uses it, even when the
  // listening socket is already gone.
  for (AcceptOp* a : accepts_) {
    if (a->posted && a->sock != INVALID_SOCKET) {
      closesocket(a->sock);
      a->sock = INVALID_SOCKET;
    }
  }
  for (ConnIo* io = all_; io; io = io->all_next)
    if (io->pending && io->sock != INVALID_SOCKET) CancelIoEx(reinterpret_cast<HANDLE>(io->sock), nullptr);

  ULONGLONG deadline = GetTickCount64() + kDrainMs;
  while (inflight_ > 0) {
    ULONGLONG now = GetTickCount64();
    if (now >= deadline) break;
    OVERLAPPED_ENTRY ents[kMaxEntries];
    ULONG got = 0;
    if (!GetQueuedCompletionStatusEx(port_, ents, kMaxEntries, &got, DWORD(deadline - now), FALSE)) break;
    for (ULONG i = 0; i < got; i++) {
      IoOp* op = reinterpret_cast<IoOp*>(ents[i].lpOverlapped);
      if (!op) continue;
      inflight_--;
      if (op->kind == OpKind::kAccept) {
        op->acc->posted = false;
      } else if (op->conn) {
        op->conn->pending--;
      }
    }
  }
  bool drained = inflight_ == 0;
  for (AcceptOp* a : accepts_) {
    if (a->sock != INVALID_SOCKET && !a->posted) closesocket(a->sock);
    if (drained) delete a;
  }
  accepts_.clear();
  while (all_) {
    ConnIo* io = all_;
    all_ = io->all_next;
    // The engine owns sockets it never handed to close(); the Conn itself
    // may be gone already, so it is not touched.
    if (drained) delete io;
  }
  // Lent buffers are the engine's until release(); the engine is gone too.
  for (uint8_t* b : bufs_) std::free(b);
  CloseHandle(port_);
}

// ---------------------------------------------------------------------------
// Listening: a pool of outstanding AcceptEx calls.
// ---------------------------------------------------------------------------
bool IocpPoller::listen(sock_t lsock, std::string* err) {
  if (listening_ || lsock_ != INVALID_SOCKET) {
    *err = "iocp: this I/O thread is already listening";
    return false;
  }
  if (lsock == INVALID_SOCKET) {
    *err = "iocp: invalid listening socket";
    return false;
  }
  GUID guid = WSAID_ACCEPTEX;
  DWORD got = 0;
  LPFN_ACCEPTEX fn = nullptr;
  if (WSAIoctl(lsock, SIO_GET_EXTENSION_FUNCTION_POINTER, &guid, sizeof guid, &fn, sizeof fn,
               &got, nullptr, nullptr) != 0 || !fn) {
    *err = "iocp: AcceptEx is not available: " + net_error_text(WSAGetLastError());
    return false;
  }
  sockaddr_storage ss;
  int sl = sizeof ss;
  if (getsockname(lsock, reinterpret_cast<sockaddr*>(&ss), &sl) != 0) {
    *err = "iocp: getsockname on the listening socket: " + net_error_text(WSAGetLastError());
    return false;
  }
  if (!CreateIoCompletionPort(reinterpret_cast<HANDLE>(lsock), port_, kKeyListener, 0)) {
    *err = "iocp: cannot attach the listening socket to the port: " + net_error_text(int(GetLastError()));
    return false;
  }
  lsock_ = lsock;
  lfamily_ = ss.ss_family;
  accept_ex_ = fn;
  listen_skip_ = use_skip_ && set_skip_mode(lsock);
  listening_ = true;
  while (accepts_.size() < size_t(kAcceptPool)) {
    AcceptOp* a = new (std::nothrow) AcceptOp();
    if (!a) break;
    accepts_.push_back(a);
  }
  refill_accepts();
  size_t posted = 0;
  for (AcceptOp* a : accepts_) posted += a->posted ? 1 : 0;
  if (posted == 0 && !accept_retry_now_) {
    // Nothing could be posted at all: report it instead of a silent server.
    stop_listen();
    *err = "iocp: cannot post AcceptEx: " + net_error_text(WSAENOBUFS);
    return false;
  }
  return true;
}

void IocpPoller::stop_listen() {
  if (lsock_ == INVALID_SOCKET) return;
  listening_ = false;
  accept_short_ = false;
  // Cancel every AcceptEx issued on the listening socket; they come back as
  // aborted packets and accept_finished closes their sockets.  The engine
  // closes the listening socket itself afterwards.
  CancelIoEx(reinterpret_cast<HANDLE>(lsock_), nullptr);
  lsock_ = INVALID_SOCKET;
}

IocpPoller::Post IocpPoller::post_accept(AcceptOp* a, int* err) {
  SOCKET s = WSASocketW(lfamily_, SOCK_STREAM, IPPROTO_TCP, nullptr, 0,
                        WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  if (s == INVALID_SOCKET && WSAGetLastError() == WSAEINVAL)
    s = WSASocketW(lfamily_, SOCK_STREAM, IPPROTO_TCP, nullptr, 0, WSA_FLAG_OVERLAPPED);
  if (s == INVALID_SOCKET) {
    *err = WSAGetLastError();
    return Post::kFailed;
  }
  std::memset(&a->op, 0, sizeof a->op);
  a->op.kind = OpKind::kAccept;
  a->op.acc = a;
  a->sock = s;
  a->posted = true;
  inflight_++;
  DWORD got = 0;
  // No receive data: complete on the connection, not on its first bytes.
  if (accept_ex_(lsock_, s, a->addr, 0, kAddrLen, kAddrLen, &got, &a->op.ov)) {
    if (!listen_skip_) return Post::kPending;  // a packet is queued anyway
    inflight_--;
    a->posted = false;
    return Post::kDone;
  }
  int e = WSAGetLastError();
  if (e == ERROR_IO_PENDING) return Post::kPending;
  inflight_--;
  a->posted = false;
  closesocket(s);
  a->sock = INVALID_SOCKET;
  *err = e;
  return Post::kFailed;
}

void IocpPoller::accept_finished(AcceptOp* a, int err) {
  SOCKET s = a->sock;
  a->sock = INVALID_SOCKET;
  if (!listening_) {
    if (s != INVALID_SOCKET) closesocket(s);
    return;
  }
  if (err == 0 &&
      setsockopt(s, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, reinterpret_cast<const char*>(&lsock_),
                 sizeof lsock_) != 0)
    err = WSAGetLastError();
  if (err != 0) {
    if (s != INVALID_SOCKET) closesocket(s);
    if (!is_cancel(err)) emit_conn(CompKind::kAcceptError, nullptr, -err);
  } else {
    Completion c = completion_of(CompKind::kAccepted, nullptr, 0);
    c.sock = s;
    emit(c);
  }
  accept_short_ = true;  // this AcceptOp is idle now
}

// Post every idle AcceptOp.  At-once successes (skip mode) are handled here
// in a loop, bounded so that a flood of connections cannot starve the rest
// of the thread's work.
void IocpPoller::refill_accepts() {
  accept_short_ = false;
  accept_retry_now_ = false;
  if (!listening_) return;
  int burst = 0;
  for (AcceptOp* a : accepts_) {
    while (!a->posted && listening_) {
      int err = 0;
      Post p = post_accept(a, &err);
      if (p == Post::kPending) break;
      if (p == Post::kDone) {
        accept_finished(a, 0);
        accept_short_ = false;
        if (++burst >= kAcceptSyncBurst) {
          accept_short_ = true;
          accept_retry_now_ = true;
          return;
        }
        continue;
      }
      // Out of sockets or memory: tell the engine and try again shortly.
      emit_conn(CompKind::kAcceptError, nullptr, -err);
      accept_short_ = true;
      accept_retry_at_ = GetTickCount64() + kAcceptRetryMs;
      return;
    }
  }
}

// ---------------------------------------------------------------------------
// Connections.
// ---------------------------------------------------------------------------
// A connection's ConnIo is made on first use: start_recv() normally, but
// the engine may also send() to a connection it never starts receiving on
// (one refused while held for admission gets a farewell frame).
ConnIo* IocpPoller::attach(Conn* c, std::string* err) {
  if (c->be_ptr) return static_cast<ConnIo*>(c->be_ptr);
  if (c->sock == kBadSock) {
    *err = "iocp: connection without a socket";
    return nullptr;
  }
  ConnIo* io = new (std::nothrow) ConnIo();
  if (!io) {
    *err = "iocp: out of memory";
    return nullptr;
  }
  if (!CreateIoCompletionPort(reinterpret_cast<HANDLE>(c->sock), port_, kKeyConn, 0)) {
    *err = "iocp: cannot attach the socket to the port: " + net_error_text(int(GetLastError()));
    delete io;
    return nullptr;
  }
  u_long nb = 1;
  if (ioctlsocket(c->sock, FIONBIO, &nb) != 0) {
    *err = "iocp: cannot make the socket non-blocking: " + net_error_text(WSAGetLastError());
    delete io;
    return nullptr;
  }
  std::memset(&io->recv, 0, sizeof io->recv);
  std::memset(&io->send, 0, sizeof io->send);
  io->recv.kind = OpKind::kRecv;
  io->recv.conn = io;
  io->send.kind = OpKind::kSend;
  io->send.conn = io;
  io->conn = c;
  io->sock = c->sock;
  io->skip = use_skip_ && set_skip_mode(c->sock);
  io->all_next = all_;
  if (all_) all_->all_prev = io;
  all_ = io;
  c->be_ptr = io;
  return io;
}

bool IocpPoller::start_recv(Conn* c, std::string* err) {
  if (!c) {
    *err = "iocp: start_recv without a connection";
    return false;
  }
  ConnIo* io = attach(c, err);
  if (!io) return false;
  if (io->closing || io->recv_started) {
    *err = io->closing ? "iocp: connection is closing" : "iocp: connection already receiving";
    return false;
  }
  io->recv_started = true;
  io->paused = io->missed = false;
  post_recv(io);
  return true;
}

// Pausing leaves the zero-byte WSARecv outstanding: it holds no memory, and
// when it finishes while paused the readiness is only remembered (`missed`).
// Unread data stays in the kernel, so TCP pushes back on this peer alone.
void IocpPoller::pause_recv(Conn* c) {
  ConnIo* io = c ? static_cast<ConnIo*>(c->be_ptr) : nullptr;
  if (!io || io->paused || io->closing) return;
  io->paused = true;
  if (io->list != ListId::kNone) {
    unlist(io);
    io->missed = true;
  }
}

void IocpPoller::resume_recv(Conn* c) {
  ConnIo* io = c ? static_cast<ConnIo*>(c->be_ptr) : nullptr;
  if (!io || !io->paused) return;
  io->paused = false;
  if (io->missed && !io->recv_stopped && !io->closing && io->list == ListId::kNone) ready_.push(io);
  io->missed = false;
}

void IocpPoller::post_recv(ConnIo* io) {
  if (io->closing || io->recv_stopped) return;
  std::memset(&io->recv.ov, 0, sizeof io->recv.ov);
  WSABUF b;
  b.len = 0;
  b.buf = nullptr;
  DWORD got = 0, flags = 0;
  io->pending++;
  inflight_++;
  if (WSARecv(io->sock, &b, 1, &got, &flags, &io->recv.ov, nullptr) == 0) {
    if (!io->skip) return;  // the packet comes anyway
    io->pending--;
    inflight_--;
    ready_.push(io);        // readable now: read at the next wait()
    return;
  }
  int e = WSAGetLastError();
  if (e == WSA_IO_PENDING) return;
  io->pending--;
  inflight_--;
  io->recv_stopped = true;
  emit_conn(CompKind::kRecvEnd, io->conn, -e);
}

bool IocpPoller::take_buffer(uint16_t* id) {
  if (free_.empty()) return false;
  uint16_t b = free_.back();
  if (!bufs_[b]) {
    bufs_[b] = static_cast<uint8_t*>(std::malloc(buf_bytes_));
    if (!bufs_[b]) return false;
  }
  free_.pop_back();
  lent_[b] = 1;
  *id = b;
  return true;
}

// The zero-byte receive said "readable": read with a pooled buffer.
void IocpPoller::try_recv(ConnIo* io) {
  if (io->closing || io->recv_stopped) return;
  if (io->paused) {
    io->missed = true;
    return;
  }
  uint16_t b;
  if (!take_buffer(&b)) {
    if (free_.empty()) {
      parked_.push(io);  // rule 2: stop receiving until release()
    } else {
      io->recv_stopped = true;  // the pool has room but malloc failed
      emit_conn(CompKind::kRecvEnd, io->conn, -WSAENOBUFS);
    }
    return;
  }
  int n = ::recv(io->sock, reinterpret_cast<char*>(bufs_[b]), int(buf_bytes_), 0);
  if (n > 0) {
    Completion c = completion_of(CompKind::kReceived, io->conn, n);
    c.buf = b;
    c.data = bufs_[b];
    emit(c);
    post_recv(io);
    return;
  }
  int e = n == 0 ? 0 : WSAGetLastError();
  give_back(b);
  if (e == WSAEWOULDBLOCK) {
    post_recv(io);  // spurious readiness: wait again
    return;
  }
  io->recv_stopped = true;
  emit_conn(CompKind::kRecvEnd, io->conn, -e);
}

void IocpPoller::release(uint16_t buf) {
  if (buf >= lent_.size() || !lent_[buf]) return;  // not lent: ignore
  give_back(buf);
}

void IocpPoller::send(Conn* c) {
  if (!c) return;
  std::string err;
  ConnIo* io = attach(c, &err);
  if (!io || io->closing) {
    emit_conn(CompKind::kSent, c, -WSAENOTCONN);
    return;
  }
  if (io->send_busy) {
    // A second send while one is outstanding breaks rule 1: refuse it
    // rather than reuse an OVERLAPPED the kernel still owns.
    emit_conn(CompKind::kSent, c, -WSAEINVAL);
    return;
  }
  if (c->send_off >= c->sending.len) {
    emit_conn(CompKind::kSent, c, 0);  // nothing to write
    return;
  }
  io->send_busy = true;
  io->send_done = 0;
  post_send(io);
}

void IocpPoller::post_send(ConnIo* io) {
  // Loop only for at-once partial writes (skip mode); Windows normally
  // completes an overlapped stream send in full.
  for (;;) {
    Conn* c = io->conn;
    std::memset(&io->send.ov, 0, sizeof io->send.ov);
    WSABUF b;
    b.buf = reinterpret_cast<char*>(c->sending.data + c->send_off);
    b.len = ULONG(c->sending.len - c->send_off);
    DWORD sent = 0;
    io->pending++;
    inflight_++;
    if (WSASend(io->sock, &b, 1, &sent, 0, &io->send.ov, nullptr) == 0) {
      if (!io->skip) return;
      io->pending--;
      inflight_--;
      if (sent > 0 && sent < b.len) {
        c->send_off += sent;
        io->send_done += sent;
        continue;
      }
      send_finished(io, sent, 0);
      return;
    }
    int e = WSAGetLastError();
    if (e == WSA_IO_PENDING) return;
    io->pending--;
    inflight_--;
    send_finished(io, 0, e);
    return;
  }
}

void IocpPoller::send_finished(ConnIo* io, DWORD bytes, int err) {
  Conn* c = io->conn;
  if (err == 0 && bytes == 0) err = WSAECONNRESET;  // a stream send of 0 means the peer is gone
  if (err != 0) {
    io->send_busy = false;
    emit_conn(CompKind::kSent, c, -err);
    return;
  }
  c->send_off += bytes;
  io->send_done += bytes;
  if (c->send_off < c->sending.len && !io->closing) {
    post_send(io);  // partial write: go on with the rest
    return;
  }
  io->send_busy = false;
  if (c->send_off < c->sending.len) {
    emit_conn(CompKind::kSent, c, -WSA_OPERATION_ABORTED);  // cut short by close()
    return;
  }
  emit_conn(CompKind::kSent, c, int32_t(io->send_done));
}

void IocpPoller::close(Conn* c) {
  if (!c) return;
  ConnIo* io = static_cast<ConnIo*>(c->be_ptr);
  if (!io) {
    // Never started (or start_recv failed): nothing is in the kernel.
    if (c->sock != kBadSock) closesocket(c->sock);
    c->sock = kBadSock;
    emit_conn(CompKind::kClosed, c, 0);
    return;
  }
  if (io->closing) return;  // one kClosed per close
  io->closing = true;
  unlist(io);
  if (io->pending) CancelIoEx(reinterpret_cast<HANDLE>(io->sock), nullptr);
  closesocket(io->sock);
  io->sock = INVALID_SOCKET;
  c->sock = kBadSock;
  if (io->pending == 0) finish(io);
}

void IocpPoller::finish(ConnIo* io) {
  if (io->all_prev) io->all_prev->all_next = io->all_next; else all_ = io->all_next;
  if (io->all_next) io->all_next->all_prev = io->all_prev;
  Conn* c = io->conn;
  c->be_ptr = nullptr;
  delete io;
  emit_conn(CompKind::kClosed, c, 0);
}

// The Winsock error of a finished operation.  WSAGetOverlappedResult maps
// the NTSTATUS exactly but needs the socket open; closed sockets use the
// small table above (their errors only matter as "aborted").
int IocpPoller::op_error(SOCKET s, IoOp* op) {
  if (op->ov.Internal == 0) return 0;
  if (s != INVALID_SOCKET) {
    DWORD bytes = 0, flags = 0;
    if (WSAGetOverlappedResult(s, &op->ov, &bytes, FALSE, &flags)) return 0;
    int e = WSAGetLastError();
    if (e != 0 && e != WSA_IO_INCOMPLETE) return e;
  }
  return ntstatus_to_wsa(op->ov.Internal);
}

void IocpPoller::handle_packet(const OVERLAPPED_ENTRY& e) {
  if (e.lpCompletionKey == kKeyWake && e.lpOverlapped == nullptr) {
    // Clear first: a wake() after this line posts a new packet, so none is
    // lost between here and the engine looking at its inbox.
    wake_pending_.store(false, std::memory_order_release);
    if (!wake_seen_) {
      wake_seen_ = true;
      emit_conn(CompKind::kWake, nullptr, 0);
    }
    return;
  }
  IoOp* op = reinterpret_cast<IoOp*>(e.lpOverlapped);
  if (!op) return;
  inflight_--;
  switch (op->kind) {
    case OpKind::kAccept: {
      AcceptOp* a = op->acc;
      a->posted = false;
      int err = op_error(listening_ ? lsock_ : INVALID_SOCKET, op);
      accept_finished(a, err);
      break;
    }
    case OpKind::kRecv: {
      ConnIo* io = op->conn;
      if (io->closing) {
        op_returned(io);
        break;
      }
      io->pending--;
      int err = op_error(io->sock, op);
      if (err != 0) {
        io->recv_stopped = true;
        emit_conn(CompKind::kRecvEnd, io->conn, -err);
      } else {
        try_recv(io);
      }
      break;
    }
    case OpKind::kSend: {
      ConnIo* io = op->conn;
      int err = op_error(io->sock, op);
      io->pending--;
      send_finished(io, err ? 0 : e.dwNumberOfBytesTransferred, err);
      if (io->closing && io->pending == 0) finish(io);
      break;
    }
  }
}

int IocpPoller::wait(Completion* out, int cap, int timeout_ms) {
  if (!out || cap <= 0) return 0;
  out_ = out;
  cap_ = cap;
  n_ = 0;
  wake_seen_ = false;

  // 1. Completions reported outside wait() or left over from the last call.
  n_ = backlog_.take(out_, n_, cap_);

  // 2. Connections whose zero-byte receive finished at once.  Take only the
  // ones there now; a connection re-queued while reading waits its turn.
  ConnIo* stop_at = ready_.tail;
  while (n_ < cap_ && !ready_.empty()) {
    ConnIo* io = ready_.pop();
    bool last = io == stop_at;
    try_recv(io);
    if (last) break;
  }

  // 3. Idle AcceptOps.
  if (accept_short_ && listening_ && (accept_retry_now_ || GetTickCount64() >= accept_retry_at_))
    refill_accepts();

  // 4. The port: block only when there is nothing to return yet.
  if (n_ < cap_) {
    DWORD t = timeout_ms < 0 ? INFINITE : DWORD(timeout_ms);
    if (n_ > 0 || !ready_.empty() || !backlog_.empty() || accept_retry_now_) t = 0;
    if (accept_short_ && listening_ && t > DWORD(kAcceptRetryMs)) t = kAcceptRetryMs;
    OVERLAPPED_ENTRY ents[kMaxEntries];
    ULONG want = ULONG(cap_ - n_ < kMaxEntries ? cap_ - n_ : kMaxEntries);
    ULONG got = 0;
    if (GetQueuedCompletionStatusEx(port_, ents, want, &got, t, FALSE)) {
      for (ULONG i = 0; i < got; i++) handle_packet(ents[i]);
    }
    // Re-post the AcceptOps those packets freed, so the pool stays full.
    if (accept_short_ && listening_ && GetTickCount64() >= accept_retry_at_) refill_accepts();
    // FALSE with WAIT_TIMEOUT is the timeout; any other failure (the port
    // is gone) is returned as "nothing" and the engine's stop path ends it.
  }

  int n = n_;
  out_ = nullptr;
  cap_ = n_ = 0;
  return n;
}

void IocpPoller::wake() {
  if (!wake_pending_.exchange(true, std::memory_order_acq_rel) &&
      !PostQueuedCompletionStatus(port_, 0, kKeyWake, nullptr)) {
    // No packet went out (no memory for it): do not leave the flag set, or
    // every later wake() would be swallowed.
    wake_pending_.store(false, std::memory_order_release);
  }
}

}  // namespace

Probe iocp_probe() {
  std::string err;
  if (!net_init(&err)) return Probe{false, err};
  HANDLE p = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
  if (!p) return Probe{false, "CreateIoCompletionPort: " + net_error_text(int(GetLastError()))};
  CloseHandle(p);
  return Probe{true, std::string()};
}

std::unique_ptr<Poller> iocp_create(const BackendConfig& cfg, std::string* err) {
  if (!net_init(err)) return nullptr;
  // One port per I/O thread, drained by that thread only: concurrency 1.
  HANDLE p = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
  if (!p) {
    *err = "CreateIoCompletionPort: " + net_error_text(int(GetLastError()));
    return nullptr;
  }
  // WHIRLWIND_IOCP_SKIP_ON_SUCCESS=0 turns the mode off, as a non-IFS
  // provider does: test/windows runs the backend both ways.
  const char* skip_env = std::getenv("WHIRLWIND_IOCP_SKIP_ON_SUCCESS");
  bool use_skip = !(skip_env && skip_env[0] == '0');
  IocpPoller* poller = new (std::nothrow) IocpPoller(p, cfg, use_skip);
  if (!poller) {
    CloseHandle(p);
    *err = "iocp: out of memory";
    return nullptr;
  }
  return std::unique_ptr<Poller>(poller);
}

}  // namespace ww
