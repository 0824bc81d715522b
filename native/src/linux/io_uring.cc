// io_uring.cc - the completion backend for Linux, on raw io_uring syscalls.
//
// The kernel does the I/O and posts one completion record (CQE) per finished
// operation, so this file mostly translates CQEs into the engine's
// Completions.  No liburing: the uapi header <linux/io_uring.h> and three
// system calls (io_uring_setup / io_uring_enter / io_uring_register).
//
//   - One ring per I/O thread, created on that thread (create_poller runs
//     there).  Set up with SINGLE_ISSUER | DEFER_TASKRUN (kernel 6.1): the
//     kernel runs completion work only when we enter to wait, in our thread,
//     which batches it and saves IPIs.  Older kernels fall back (see
//     setup_ring()).
//   - Accept: one multishot IORING_OP_ACCEPT on the listener (kernel 5.19).
//   - Receive: one multishot IORING_OP_RECV per connection (kernel 6.0) with
//     IOSQE_BUFFER_SELECT from a provided buffer ring (kernel 5.19).  The
//     kernel picks a buffer only when data arrives, so an idle connection
//     holds none.  When the ring is empty the recv ends with -ENOBUFS; the
//     connection waits on the starved list and is re-armed when buffers come
//     back (rule 2: the data stays in the socket, TCP pushes back).
//   - Send: IORING_OP_SEND, at most one per connection (rule 1); a short send
//     continues from where it stopped.  IORING_OP_SEND_ZC for large frames
//     only when WHIRLWIND_IO_URING_SEND_ZC=1 (it does not pay on loopback,
//     see docs/design.md).
//   - Close: IORING_OP_ASYNC_CANCEL for the connection's recv and send, close
//     the fd, and report kClosed once the last CQE of the connection is in
//     (rule 3).
//   - wake(): an IORING_OP_READ on an eventfd, re-armed after each wake.
//   - wait(): everything queued since the last wait is submitted by the same
//     io_uring_enter that waits (GETEVENTS | EXT_ARG with a timeout).
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "eventfd_wake.h"
#include "backends.h"

// Newer uapi names the build machine's header may lack (it is the one from
// linux-libc-dev, often older than the running kernel).
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif
// Incrementally consumed provided buffers (kernel 6.12): io_uring_buf_reg's
// flags field (named `pad` in older headers) and the CQE flag that says the
// kernel keeps using the rest of the buffer.
#ifndef IOU_PBUF_RING_INC
#define IOU_PBUF_RING_INC 2
#endif
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4)
#endif

namespace ww {

namespace {

// ---------------------------------------------------------------------------
// user_data: the one bit layout of this file.
//
//   63                                            3 2     0
//   +-----------------------------------------------+-------+
//   |  Conn* (8-byte aligned)  or  a small number   |  op   |
//   +-----------------------------------------------+-------+
//
//   op kIgnore  : completions we do not care about (cancel results).
//   op kAccept  : upper bits = listen generation (a stale accept is closed).
//   op kWake    : the eventfd read.
//   op kRecv    : the connection's multishot recv.
//   op kSend    : the connection's send (and, for SEND_ZC, its notification,
//                 told apart by IORING_CQE_F_NOTIF).
enum Op : uint64_t { kIgnore = 0, kAccept = 1, kWake = 2, kRecv = 3, kSend = 4 };
constexpr uint64_t kOpMask = 7;
static_assert(alignof(Conn) >= 8, "user_data keeps the op in the low 3 bits of a Conn*");

inline uint64_t ud_make(const void* p, Op op) { return uint64_t(reinterpret_cast<uintptr_t>(p)) | op; }
inline uint64_t ud_make_n(uint64_t n, Op op) { return (n << 3) | op; }
inline Op ud_op(uint64_t ud) { return Op(ud & kOpMask); }
inline Conn* ud_conn(uint64_t ud) { return reinterpret_cast<Conn*>(uintptr_t(ud & ~kOpMask)); }
inline uint64_t ud_num(uint64_t ud) { return ud >> 3; }

// Conn::be_flags bits used by this backend.  be_aux counts SEND_ZC
// notifications still owed by the kernel; be_next / be_ptr link the starved
// list (connections whose recv ended with -ENOBUFS).
constexpr uint32_t kRecvArmed = 1u << 0;   // a recv of c is in the kernel
constexpr uint32_t kSendBusy = 1u << 1;    // a send of c is in the kernel
constexpr uint32_t kSendAll = 1u << 2;     // all bytes sent; waiting for ZC notifications
constexpr uint32_t kRecvDone = 1u << 3;    // EOF or error reported
constexpr uint32_t kPaused = 1u << 4;      // pause_recv: do not (re-)arm
constexpr uint32_t kStarved = 1u << 5;     // on the starved list
constexpr uint32_t kClosing = 1u << 6;     // close() called; kClosed owed
constexpr uint32_t kCancelRecv = 1u << 7;  // a cancel for the current recv is queued
constexpr uint32_t kStarted = 1u << 8;     // start_recv was called
// Bits 16..27: the errno of a finished send whose kSent waits for SEND_ZC
// notifications (0: it succeeded).
constexpr uint32_t kSendErrShift = 16;
constexpr uint32_t kSendErrMask = 0xfffu << kSendErrShift;

constexpr uint16_t kBufGroup = 0;
constexpr uint32_t kSqEntries = 1024;
constexpr uint32_t kCqEntries = 16384;
constexpr uint32_t kMaxBufRing = 32768;     // the kernel's limit for a provided buffer ring
constexpr uint32_t kMaxSend = 1u << 30;     // one send's length fits cqe->res
constexpr uint32_t kZcMinBytes = 64 * 1024; // SEND_ZC only for sends at least this big

int sys_setup(unsigned entries, struct io_uring_params* p) {
  return int(syscall(__NR_io_uring_setup, entries, p));
}
int sys_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags, const void* arg,
              size_t argsz) {
  return int(syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, arg, argsz));
}
int sys_register(int fd, unsigned op, const void* arg, unsigned nr) {
  return int(syscall(__NR_io_uring_register, fd, op, arg, nr));
}

int64_t now_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

bool env_on(const char* name) {
  const char* v = getenv(name);
  return v && v[0] && !(v[0] == '0' && v[1] == 0);
}

bool env_off(const char* name) {
  const char* v = getenv(name);
  return v && v[0] == '0' && v[1] == 0;
}

// ---------------------------------------------------------------------------
// The ring: setup with fallbacks, and liburing's verbs (get_sqe, submit,
// peek / for_each / advance on the CQ), with the barrier at the line that
// needs it.
//
//   SQ: we own the tail, the kernel the head.  We write SQEs at
//       sqes[tail & mask], then release-store the tail (the kernel must see
//       the SQE bytes before the tail that covers them).  Full when
//       tail - acquire(head) == entries.
//   CQ: the kernel owns the tail, we the head.  Acquire-load the tail (the
//       CQE bytes before it are then visible), read the batch, then
//       release-store the head once (the kernel may reuse those slots only
//       after we are done reading them).  Empty when head == tail.
struct Ring {
  int fd = -1;
  uint32_t setup_flags = 0;
  uint32_t features = 0;
  // SQ
  void* sq_map = nullptr;
  size_t sq_map_len = 0;
  uint32_t* sq_khead = nullptr;
  uint32_t* sq_ktail = nullptr;
  uint32_t* sq_array = nullptr;
  uint32_t sq_mask = 0;
  uint32_t sq_entries = 0;
  struct io_uring_sqe* sqes = nullptr;
  size_t sqes_len = 0;
  uint32_t sq_tail = 0;       // local tail (published at submit)
  uint32_t sq_submitted = 0;  // SQEs handed to io_uring_enter so far
  // CQ
  void* cq_map = nullptr;
  size_t cq_map_len = 0;
  uint32_t* cq_khead = nullptr;
  uint32_t* cq_ktail = nullptr;
  uint32_t cq_mask = 0;
  struct io_uring_cqe* cqes = nullptr;

  ~Ring() { destroy(); }

  void destroy() {
    if (sqes) munmap(sqes, sqes_len);
    if (cq_map && cq_map != sq_map) munmap(cq_map, cq_map_len);
    if (sq_map) munmap(sq_map, sq_map_len);
    sqes = nullptr;
    sq_map = cq_map = nullptr;
    if (fd >= 0) ::close(fd);
    fd = -1;
  }

  // Returns 0 or -errno (of io_uring_setup, or of mmap).
  int init(uint32_t sq_want, uint32_t cq_want) {
    // Best first, then fall back on EINVAL (a flag this kernel does not know):
    //  - SINGLE_ISSUER | DEFER_TASKRUN: 6.1.
    //  - COOP_TASKRUN (no IPI to run completion work): 5.19.
    //  - SUBMIT_ALL (one bad SQE does not stop the batch): 5.18.
    //  - CQSIZE: 5.5.
    static const uint32_t kTries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL |
            IORING_SETUP_CQSIZE,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL |
            IORING_SETUP_CQSIZE,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE,
        IORING_SETUP_CQSIZE,
    };
    struct io_uring_params p;
    int r = -EINVAL;
    for (uint32_t flags : kTries) {
      std::memset(&p, 0, sizeof p);
      p.flags = flags;
      p.cq_entries = cq_want;
      r = sys_setup(sq_want, &p);
      if (r >= 0) {
        fd = r;
        setup_flags = flags;
        break;
      }
      r = -errno;
      if (r != -EINVAL) return r;
    }
    if (fd < 0) return r;
    features = p.features;

    sq_map_len = p.sq_off.array + p.sq_entries * sizeof(uint32_t);
    cq_map_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (features & IORING_FEAT_SINGLE_MMAP) {
      if (cq_map_len > sq_map_len) sq_map_len = cq_map_len;
      cq_map_len = sq_map_len;
    }
    sq_map = mmap(nullptr, sq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                  IORING_OFF_SQ_RING);
    if (sq_map == MAP_FAILED) {
      sq_map = nullptr;
      return -errno;
    }
    if (features & IORING_FEAT_SINGLE_MMAP) {
      cq_map = sq_map;
    } else {
      cq_map = mmap(nullptr, cq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                    IORING_OFF_CQ_RING);
      if (cq_map == MAP_FAILED) {
        cq_map = nullptr;
        return -errno;
      }
    }
    sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
    void* s = mmap(nullptr, sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                   IORING_OFF_SQES);
    if (s == MAP_FAILED) return -errno;
    sqes = static_cast<struct io_uring_sqe*>(s);

    uint8_t* sb = static_cast<uint8_t*>(sq_map);
    sq_khead = reinterpret_cast<uint32_t*>(sb + p.sq_off.head);
    sq_ktail = reinterpret_cast<uint32_t*>(sb + p.sq_off.tail);
    sq_mask = *reinterpret_cast<uint32_t*>(sb + p.sq_off.ring_mask);
    sq_entries = *reinterpret_cast<uint32_t*>(sb + p.sq_off.ring_entries);
    sq_array = reinterpret_cast<uint32_t*>(sb + p.sq_off.array);
    // The SQ index array maps ring slot i to SQE i, once and for all.
    for (uint32_t i = 0; i < sq_entries; ++i) sq_array[i] = i;
    sq_tail = sq_submitted = *sq_ktail;

    uint8_t* cb = static_cast<uint8_t*>(cq_map);
    cq_khead = reinterpret_cast<uint32_t*>(cb + p.cq_off.head);
    cq_ktail = reinterpret_cast<uint32_t*>(cb + p.cq_off.tail);
    cq_mask = *reinterpret_cast<uint32_t*>(cb + p.cq_off.ring_mask);
    cqes = reinterpret_cast<struct io_uring_cqe*>(cb + p.cq_off.cqes);
    return 0;
  }

  uint32_t sq_space() const {
    // Acquire pairs with the kernel's store of head: the SQE slots before it
    // have been read and may be reused.
    return sq_entries - (sq_tail - __atomic_load_n(sq_khead, __ATOMIC_ACQUIRE));
  }

  // Hand over everything queued; with GETEVENTS also wait.  Returns the
  // result of io_uring_enter (>= 0, or -errno).
  int enter(unsigned min_complete, unsigned flags, const void* arg, size_t argsz) {
    // Release: the SQE bytes written above are visible before the tail.
    __atomic_store_n(sq_ktail, sq_tail, __ATOMIC_RELEASE);
    unsigned to_submit = sq_tail - sq_submitted;
    int r = sys_enter(fd, to_submit, min_complete, flags, arg, argsz);
    if (r < 0) return -errno;
    sq_submitted += uint32_t(r);
    return r;
  }

  // A zeroed SQE, or nullptr when the SQ is full even after submitting.
  struct io_uring_sqe* get_sqe() {
    if (sq_space() == 0) {
      // Full: submit what is queued (no waiting) to make room.
      enter(0, 0, nullptr, 0);
      if (sq_space() == 0) return nullptr;
    }
    struct io_uring_sqe* sqe = &sqes[sq_tail & sq_mask];
    std::memset(sqe, 0, sizeof *sqe);
    ++sq_tail;
    return sqe;
  }

  uint32_t cq_ready() const {
    // Acquire: the CQEs up to this tail are fully written.
    return __atomic_load_n(cq_ktail, __ATOMIC_ACQUIRE) - *cq_khead;
  }
};

// ---------------------------------------------------------------------------
// Probe: really set a ring up and try what we need, once per process.

struct KernelProbe {
  bool ok = false;
  std::string reason;
  bool send_zc = false;
};

std::string errno_name(int e) {
  switch (e) {
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case EMFILE: return "EMFILE";
    case EACCES: return "EACCES";
    default: return "errno " + std::to_string(e);
  }
}

int read_io_uring_disabled() {
  FILE* f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
  if (!f) return -1;
  int v = -1;
  if (fscanf(f, "%d", &v) != 1) v = -1;
  fclose(f);
  return v;
}

std::string setup_failure(int e) {
  std::string s = "io_uring_setup failed: " + errno_name(e);
  int dis = read_io_uring_disabled();
  if (e == ENOSYS) {
    s += " (the kernel has no io_uring, or a seccomp profile hides it)";
  } else if (dis > 0 && (e == EPERM || e == EACCES)) {
    s += " (kernel.io_uring_disabled=" + std::to_string(dis) + ")";
  } else if (e == EPERM) {
    s += " (blocked by seccomp, e.g. Docker's default profile)";
  }
  return s;
}

// A provided buffer ring: page-aligned, entries a power of two.
//
//   +--------------------+--------------------+-----
//   | buf 0              | buf 1              | ...     16 bytes each:
//   | addr len bid [tail]| addr len bid resv  |         addr u64, len u32, bid u16
//   +--------------------+--------------------+-----
//
// The ring's tail (u16) overlays the resv field of entry 0 (offset 14).  We
// produce (release-store the tail), the kernel consumes (it reports the id of
// the buffer it took in cqe->flags >> 16).  Entries are reached through at(),
// not through io_uring_buf_ring::bufs: under C++ the uapi header's
// __DECLARE_FLEX_ARRAY places `bufs` at offset 8 (an empty struct has size 1
// there), which would put every entry 8 bytes off.
struct BufRing {
  struct io_uring_buf_ring* br = nullptr;
  struct io_uring_buf* at(uint32_t i) { return reinterpret_cast<struct io_uring_buf*>(br) + i; }
  uint16_t* tail() {
    return reinterpret_cast<uint16_t*>(reinterpret_cast<uint8_t*>(br) + offsetof(struct io_uring_buf, resv));
  }
  size_t len = 0;
  int alloc(uint32_t entries) {
    len = size_t(entries) * sizeof(struct io_uring_buf);
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return -errno;
    br = static_cast<struct io_uring_buf_ring*>(p);
    return 0;
  }
  ~BufRing() {
    if (br) munmap(br, len);
  }
};

int register_buf_ring(int ring_fd, struct io_uring_buf_ring* br, uint32_t entries, bool inc) {
  struct io_uring_buf_reg reg;
  std::memset(&reg, 0, sizeof reg);
  reg.ring_addr = uint64_t(reinterpret_cast<uintptr_t>(br));
  reg.ring_entries = entries;
  reg.bgid = kBufGroup;
  // The flags field: `pad` in headers older than 6.12.
  const uint16_t flags = inc ? IOU_PBUF_RING_INC : 0;
  std::memcpy(reinterpret_cast<uint8_t*>(&reg) + offsetof(struct io_uring_buf_reg, bgid) + 2, &flags, 2);
  return sys_register(ring_fd, IORING_REGISTER_PBUF_RING, &reg, 1) < 0 ? -errno : 0;
}

KernelProbe run_probe() {
  KernelProbe kp;
  Ring ring;
  int r = ring.init(8, 16);
  if (r < 0) {
    kp.reason = setup_failure(-r);
    return kp;
  }
  if (!(ring.features & IORING_FEAT_NODROP) || !(ring.features & IORING_FEAT_EXT_ARG)) {
    kp.reason = "kernel too old: io_uring lacks IORING_FEAT_NODROP / IORING_FEAT_EXT_ARG (needs 5.11)";
    return kp;
  }
  // Which operations this kernel knows.
  size_t plen = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
  std::vector<uint8_t> pbuf(plen, 0);
  auto* probe = reinterpret_cast<struct io_uring_probe*>(pbuf.data());
  if (sys_register(ring.fd, IORING_REGISTER_PROBE, probe, 256) < 0) {
    kp.reason = "io_uring_register(PROBE) failed: " + errno_name(errno) + " (needs kernel 5.6)";
    return kp;
  }
  auto has = [&](int op) {
    return op <= probe->last_op && (probe->ops[op].flags & IO_URING_OP_SUPPORTED);
  };
  const struct { int op; const char* name; } need[] = {
      {IORING_OP_ACCEPT, "ACCEPT"}, {IORING_OP_RECV, "RECV"}, {IORING_OP_SEND, "SEND"},
      {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"}, {IORING_OP_READ, "READ"}};
  for (auto& n : need) {
    if (!has(n.op)) {
      kp.reason = std::string("kernel lacks IORING_OP_") + n.name;
      return kp;
    }
  }
  kp.send_zc = has(IORING_OP_SEND_ZC);

  // Provided buffer rings (5.19) and multishot recv (6.0), tried for real on
  // a socket pair: one byte in, one CQE with a buffer and F_MORE out.
  BufRing bring;
  if (bring.alloc(1) < 0) {
    kp.reason = "out of memory probing io_uring";
    return kp;
  }
  if (register_buf_ring(ring.fd, bring.br, 1, false) < 0) {
    kp.reason = "kernel lacks provided buffer rings (IORING_REGISTER_PBUF_RING, needs 5.19)";
    return kp;
  }
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) {
    kp.reason = "socketpair failed while probing io_uring: " + errno_name(errno);
    return kp;
  }
  uint8_t byte_buf[16];
  bring.at(0)->addr = uint64_t(reinterpret_cast<uintptr_t>(byte_buf));
  bring.at(0)->len = sizeof byte_buf;
  bring.at(0)->bid = 0;
  __atomic_store_n(bring.tail(), uint16_t(1), __ATOMIC_RELEASE);
  struct io_uring_sqe* sqe = ring.get_sqe();
  sqe->opcode = IORING_OP_RECV;
  sqe->fd = sv[0];
  sqe->ioprio = IORING_RECV_MULTISHOT;
  sqe->flags = IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufGroup;
  sqe->user_data = 1;
  ssize_t w = ::write(sv[1], "x", 1);
  (void)w;
  struct __kernel_timespec ts = {1, 0};
  struct io_uring_getevents_arg arg;
  std::memset(&arg, 0, sizeof arg);
  arg.sigmask_sz = _NSIG / 8;
  arg.ts = uint64_t(reinterpret_cast<uintptr_t>(&ts));
  r = ring.enter(1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg, sizeof arg);
  bool got = false;
  if (ring.cq_ready() > 0) {
    struct io_uring_cqe* cqe = &ring.cqes[*ring.cq_khead & ring.cq_mask];
    got = cqe->res == 1 && (cqe->flags & IORING_CQE_F_BUFFER) && (cqe->flags & IORING_CQE_F_MORE);
    if (!got && cqe->res < 0) {
      kp.reason = "kernel lacks multishot recv with provided buffers (needs 6.0): recv gave " +
                  errno_name(-cqe->res);
    }
  } else if (r < 0 && r != -ETIME) {
    kp.reason = "io_uring_enter failed while probing: " + errno_name(-r);
  }
  // Closing the ring (below, in ~Ring) cancels the recv; do it before the
  // byte buffer goes out of scope.
  ring.destroy();
  ::close(sv[0]);
  ::close(sv[1]);
  if (!got) {
    if (kp.reason.empty()) kp.reason = "kernel lacks multishot recv with provided buffers (needs 6.0)";
    return kp;
  }
  kp.ok = true;
  return kp;
}

const KernelProbe& kernel_probe() {
  static std::once_flag once;
  static KernelProbe* kp = nullptr;
  std::call_once(once, [] { kp = new KernelProbe(run_probe()); });
  return *kp;
}

// ---------------------------------------------------------------------------

class UringPoller final : public Poller {
 public:
  ~UringPoller() override {
    // Runs on the JS thread after the engine joined the I/O thread, which
    // closed every connection it could (hard_cleanup) first.  What may still
    // be in the kernel: the eventfd read, the accept, and sends or recvs of
    // connections whose close did not finish in hard_cleanup's bounded wait.
    // With SINGLE_ISSUER this thread may not submit cancels (-EEXIST), and
    // need not: io_uring does a request's completion work (copying received
    // bytes, writing the eventfd count) as task work of the thread that
    // submitted it, and once that thread has exited the kernel runs what is
    // left from a kernel worker, where it cancels instead of doing the I/O
    // (io_should_terminate_tw()).  Closing the ring then cancels and frees
    // the requests and unregisters the buffer ring, so the memory below may
    // go.
    ring_.destroy();  // before wake_ closes its eventfd (a member, closed after this body)
    std::free(bufs_);
  }

  bool init(const BackendConfig& cfg, std::string* err) {
    const KernelProbe& kp = kernel_probe();
    if (!kp.ok) {
      *err = "io_uring: " + kp.reason;
      return false;
    }
    int r = ring_.init(kSqEntries, kCqEntries);
    if (r < 0) {
      *err = "io_uring: " + setup_failure(-r);
      return false;
    }
    buf_size_ = cfg.recv_buffer_bytes;
    buf_count_ = cfg.recv_buffer_count;
    if (buf_count_ > kMaxBufRing) buf_count_ = kMaxBufRing;
    if (buf_count_ == 0) buf_count_ = 1;
    br_entries_ = 1;
    while (br_entries_ < buf_count_) br_entries_ <<= 1;
    bufs_ = static_cast<uint8_t*>(std::malloc(size_t(buf_size_) * buf_count_));
    if (!bufs_ || bring_.alloc(br_entries_) < 0) {
      *err = "io_uring: out of memory for receive buffers";
      return false;
    }
    // Incremental consumption first (6.12): a recv takes only the bytes it
    // needs from the buffer at the ring's head, so one 64 KiB buffer serves
    // hundreds of small messages from many connections, instead of one
    // buffer per completion however little arrived (which runs a ring of 32
    // dry at once under 1000 connections and ends every recv in -ENOBUFS).
    inc_ = !env_off("WHIRLWIND_IO_URING_PBUF_INC");
    r = inc_ ? register_buf_ring(ring_.fd, bring_.br, br_entries_, true) : -EINVAL;
    if (r == -EINVAL) {
      inc_ = false;
      r = register_buf_ring(ring_.fd, bring_.br, br_entries_, false);
    }
    if (r < 0) {
      *err = "io_uring: registering the buffer ring failed: " + net_error_text(-r);
      return false;
    }
    buf_off_.assign(buf_count_, 0);
    buf_lends_.assign(buf_count_, 0);
    for (uint32_t i = 0; i < buf_count_; ++i) provide(uint16_t(i));
    publish_bufs();
    if (!wake_.open(0)) {
      *err = "io_uring: eventfd: " + net_error_text(errno);
      return false;
    }
    use_zc_ = kp.send_zc && env_on("WHIRLWIND_IO_URING_SEND_ZC");
    pending_.reserve(64);
    arm_wake();
    return true;
  }

  bool listen(sock_t lsock, std::string* err) override {
    lfd_ = lsock;
    ++listen_gen_;
    if (!arm_accept()) {
      *err = "io_uring: submission queue full";
      lfd_ = -1;
      return false;
    }
    return true;
  }

  void stop_listen() override {
    if (lfd_ >= 0 && accept_armed_) cancel(ud_make_n(listen_gen_, kAccept));
    lfd_ = -1;
    accept_paused_ = false;
  }

  // The multishot accept holds a reference to the listening socket until
  // its last completion (the cancel's -ECANCELED): until then the port
  // stays bound however the engine closes its descriptor.
  bool listen_ending() const override { return accept_armed_; }

  bool start_recv(Conn* c, std::string* err) override {
    c->be_flags = kStarted;
    c->be_aux = 0;
    c->be_next = nullptr;
    c->be_ptr = nullptr;
    if (!arm_recv(c)) {
      *err = "io_uring: submission queue full";
      return false;
    }
    return true;
  }

  void pause_recv(Conn* c) override {
    if (c->be_flags & (kPaused | kClosing)) return;
    c->be_flags |= kPaused;
    unstarve(c);
    if ((c->be_flags & kRecvArmed) && !(c->be_flags & kCancelRecv)) {
      c->be_flags |= kCancelRecv;
      cancel(ud_make(c, kRecv));
    }
  }

  void resume_recv(Conn* c) override {
    if (!(c->be_flags & kPaused) || (c->be_flags & kClosing)) return;
    c->be_flags &= ~kPaused;
    // A recv whose cancel is still on its way is re-armed when its last CQE
    // comes in (on_recv).
    if (!(c->be_flags & (kRecvArmed | kRecvDone)) && (c->be_flags & kStarted)) arm_recv(c);
  }

  void send(Conn* c) override {
    c->be_flags &= ~(kSendAll | kSendErrMask);
    if (c->send_off >= c->sending.len) {
      push(CompKind::kSent, c, int32_t(c->sending.len));
      return;
    }
    submit_send(c);
  }

  void close(Conn* c) override {
    if (c->be_flags & kClosing) return;
    c->be_flags |= kClosing;
    unstarve(c);
    if ((c->be_flags & kRecvArmed) && !(c->be_flags & kCancelRecv)) {
      c->be_flags |= kCancelRecv;
      cancel(ud_make(c, kRecv));
    }
    if (c->be_flags & kSendBusy) cancel(ud_make(c, kSend));
    if (c->sock >= 0 && use_zc_ && (c->be_aux || (c->be_flags & kSendBusy))) {
      // SEND_ZC bytes may still sit in the socket's send queue, and their
      // notifications come only when the kernel frees them, which for a
      // peer that does not read is never: abort the connection (RST, the
      // queue is dropped) so that kClosed can come.  A hard close drops
      // what is unsent anyway; with plain sends the kernel's copy may still
      // go out, with SEND_ZC it does not.
      struct linger lg = {1, 0};
      setsockopt(c->sock, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    if (c->sock >= 0) {
      // The kernel holds its own reference to the socket for each request
      // still in flight, so closing the descriptor now is safe; the socket
      // goes when the cancels have finished.  Cancels go by user_data, so
      // the number may be reused at once.
      ::close(c->sock);
      c->sock = -1;
    }
    maybe_closed(c);
  }

  void release(uint16_t buf) override {
    // Bad input (an id out of range, or one not lent) is ignored.
    if (buf >= buf_count_ || (buf_lends_[buf] & ~kKernelDone) == 0) return;
    --buf_lends_[buf];
    if (buf_lends_[buf] == kKernelDone) provide(buf);
  }

  int wait(Completion* out, int cap, int timeout_ms) override {
    int n = pending_.take(out, 0, cap);
    if (accept_paused_ && now_ms() >= accept_resume_at_) {
      accept_paused_ = false;
      if (lfd_ >= 0) arm_accept();
    }
    rearm_starved();
    publish_bufs();
    n = reap(out, n, cap);

    // One io_uring_enter: submit everything queued, and wait only if there
    // is nothing to report yet.
    int t = timeout_ms;
    if (n > 0 || !pending_.empty()) t = 0;
    if (accept_paused_ && t != 0) {
      int64_t left = accept_resume_at_ - now_ms();
      if (left < 0) left = 0;
      if (t < 0 || left < t) t = int(left);
    }
    struct __kernel_timespec ts;
    struct io_uring_getevents_arg arg;
    std::memset(&arg, 0, sizeof arg);
    arg.sigmask_sz = _NSIG / 8;
    if (t >= 0) {
      ts.tv_sec = t / 1000;
      ts.tv_nsec = (t % 1000) * 1000000LL;
      arg.ts = uint64_t(reinterpret_cast<uintptr_t>(&ts));
    }
    int r = ring_.enter(t == 0 ? 0 : 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg,
                        sizeof arg);
    (void)r;  // -ETIME (timeout), -EINTR: nothing to do; errors show up as CQEs
    if (n < cap) n = reap(out, n, cap);
    return pending_.take(out, n, cap);
  }

  void wake() override { wake_.wake(); }

 private:
  void push(CompKind k, Conn* c, int32_t res) { pending_.push(completion_of(k, c, res)); }

  // Deliver a completion now if there is room in out[], else later.
  void deliver(Completion* out, int* n, int cap, const Completion& cp) {
    if (*n < cap) out[(*n)++] = cp;
    else pending_.push(cp);
  }

  // Buffer ownership.  buf_lends_[bid] counts the kReceived completions of
  // bid not yet released, plus kKernelDone once the kernel has finished with
  // bid (a CQE without IORING_CQE_F_BUF_MORE; always, in classic mode).  The
  // buffer goes back into the ring when only that mark is left.  buf_off_
  // is how much of it the kernel has filled so far (incremental mode: each
  // recv continues where the previous one stopped).
  static constexpr uint32_t kKernelDone = 1u << 31;

  void provide(uint16_t bid) {
    buf_lends_[bid] = 0;
    buf_off_[bid] = 0;
    struct io_uring_buf* b = bring_.at(br_tail_ & (br_entries_ - 1));
    b->addr = uint64_t(reinterpret_cast<uintptr_t>(bufs_ + size_t(bid) * buf_size_));
    b->len = buf_size_;
    b->bid = bid;
    ++br_tail_;
    ++kbufs_;
  }

  void publish_bufs() {
    // Release: the io_uring_buf entries written by release() are visible to
    // the kernel before the tail that covers them.
    if (br_tail_ != br_published_) {
      __atomic_store_n(bring_.tail(), br_tail_, __ATOMIC_RELEASE);
      br_published_ = br_tail_;
    }
  }

  void cancel(uint64_t target) {
    struct io_uring_sqe* sqe = ring_.get_sqe();
    if (!sqe) return;  // cannot happen: get_sqe submits to make room
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->fd = -1;
    sqe->addr = target;
    sqe->cancel_flags = IORING_ASYNC_CANCEL_ALL;
    sqe->user_data = ud_make_n(0, kIgnore);
  }

  bool arm_accept() {
    struct io_uring_sqe* sqe = ring_.get_sqe();
    if (!sqe) return false;
    sqe->opcode = IORING_OP_ACCEPT;
    sqe->fd = lfd_;
    sqe->ioprio = IORING_ACCEPT_MULTISHOT;
    sqe->accept_flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
    sqe->user_data = ud_make_n(listen_gen_, kAccept);
    accept_armed_ = true;
    return true;
  }

  void arm_wake() {
    struct io_uring_sqe* sqe = ring_.get_sqe();
    if (!sqe) return;
    sqe->opcode = IORING_OP_READ;
    sqe->fd = wake_.fd();
    sqe->addr = uint64_t(reinterpret_cast<uintptr_t>(&wake_buf_));
    sqe->len = sizeof wake_buf_;
    sqe->off = uint64_t(-1);  // eventfd has no position: read "at the current one"
    sqe->user_data = ud_make_n(0, kWake);
  }

  bool arm_recv(Conn* c) {
    struct io_uring_sqe* sqe = ring_.get_sqe();
    if (!sqe) return false;
    sqe->opcode = IORING_OP_RECV;
    sqe->fd = c->sock;
    sqe->ioprio = IORING_RECV_MULTISHOT;
    sqe->flags = IOSQE_BUFFER_SELECT;
    sqe->buf_group = kBufGroup;
    sqe->len = 0;  // the buffer's length
    sqe->user_data = ud_make(c, kRecv);
    c->be_flags |= kRecvArmed;
    c->be_flags &= ~kCancelRecv;
    return true;
  }

  void submit_send(Conn* c) {
    struct io_uring_sqe* sqe = ring_.get_sqe();
    if (!sqe) {
      push(CompKind::kSent, c, -ENOBUFS);
      return;
    }
    uint32_t left = c->sending.len - c->send_off;
    if (left > kMaxSend) left = kMaxSend;
    const bool zc = use_zc_ && left >= kZcMinBytes;
    sqe->opcode = zc ? IORING_OP_SEND_ZC : IORING_OP_SEND;
    sqe->fd = c->sock;
    sqe->addr = uint64_t(reinterpret_cast<uintptr_t>(c->sending.data + c->send_off));
    sqe->len = left;
    sqe->msg_flags = MSG_NOSIGNAL;
    sqe->user_data = ud_make(c, kSend);
    c->be_flags |= kSendBusy;
  }

  // Starved list (connections whose recv ended for want of buffers, oldest
  // first) membership: the kStarved bit.
  void starve(Conn* c) {
    if (c->be_flags & kStarved) return;
    c->be_flags |= kStarved;
    starved_.push_back(c);
  }

  void unstarve(Conn* c) {
    if (!(c->be_flags & kStarved)) return;
    c->be_flags &= ~kStarved;
    starved_.remove(c);
  }

  void rearm_starved() {
    // Re-arm, oldest first, as many starved connections as there are buffers
    // in the kernel's hands: each of them has data waiting, so arming more
    // would only end in -ENOBUFS again.
    uint32_t budget = kbufs_;
    while (starved_.head && budget > 0) {
      Conn* c = starved_.head;
      unstarve(c);
      if (!arm_recv(c)) {
        starve(c);
        break;
      }
      --budget;
    }
  }

  void maybe_closed(Conn* c) {
    if (!(c->be_flags & kClosing)) return;
    if (c->be_flags & (kRecvArmed | kSendBusy)) return;
    if (c->be_aux) return;  // SEND_ZC notifications still owed
    c->be_flags &= ~kClosing;
    c->be_flags |= kRecvDone;
    push(CompKind::kClosed, c, 0);
  }

  int reap(Completion* out, int n, int cap) {
    uint32_t head = *ring_.cq_khead;
    // Acquire: every CQE before this tail is fully written.
    uint32_t tail = __atomic_load_n(ring_.cq_ktail, __ATOMIC_ACQUIRE);
    while (head != tail && n < cap) {
      const struct io_uring_cqe* cqe = &ring_.cqes[head & ring_.cq_mask];
      uint64_t ud = cqe->user_data;
      int32_t res = cqe->res;
      uint32_t flags = cqe->flags;
      ++head;
      switch (ud_op(ud)) {
        case kIgnore: break;
        case kAccept: on_accept(out, &n, cap, ud, res, flags); break;
        case kWake: on_wake(out, &n, cap, res); break;
        case kRecv: on_recv(out, &n, cap, ud_conn(ud), res, flags); break;
        case kSend: on_send(ud_conn(ud), res, flags); break;
      }
    }
    // Release: we are done reading the slots before head.
    __atomic_store_n(ring_.cq_khead, head, __ATOMIC_RELEASE);
    return n;
  }

  void on_wake(Completion* out, int* n, int cap, int32_t res) {
    // The kernel's READ consumed the count; now clear the flag
    // (eventfd_wake.h), before the engine reads its inbox after we return.
    wake_.consumed();
    arm_wake();
    deliver(out, n, cap, completion_of(CompKind::kWake, nullptr, 0));
  }

  void on_accept(Completion* out, int* n, int cap, uint64_t ud, int32_t res, uint32_t flags) {
    const bool current = ud_num(ud) == listen_gen_ && lfd_ >= 0;
    if (!(flags & IORING_CQE_F_MORE) && ud_num(ud) == listen_gen_) accept_armed_ = false;
    if (res >= 0) {
      if (!current) {
        ::close(res);  // accepted after stop_listen: nobody wants it
      } else {
        Completion cp = completion_of(CompKind::kAccepted, nullptr, 0);
        cp.sock = res;
        deliver(out, n, cap, cp);
      }
    } else if (current && res != -ECANCELED) {
      deliver(out, n, cap, completion_of(CompKind::kAcceptError, nullptr, res));
    }
    if (current && !accept_armed_ && !accept_paused_) {
      // The kernel ended the multishot accept.  After a success or a
      // transient error, re-arm now.  After anything else (EMFILE, ENFILE,
      // ENOBUFS, ENOMEM, or a listener gone bad) step back for a moment, as
      // the epoll backend does, rather than spin on the same error.
      if (res >= 0 || res == -ECONNABORTED || res == -EINTR || res == -EAGAIN || res == -EPROTO) {
        arm_accept();
      } else {
        accept_paused_ = true;
        accept_resume_at_ = now_ms() + 100;
      }
    }
  }

  void on_recv(Completion* out, int* n, int cap, Conn* c, int32_t res, uint32_t flags) {
    const bool more = flags & IORING_CQE_F_MORE;
    if (!more) c->be_flags &= ~(kRecvArmed | kCancelRecv);
    if (flags & IORING_CQE_F_BUFFER) {
      uint16_t bid = uint16_t(flags >> IORING_CQE_BUFFER_SHIFT);
      if (bid < buf_count_ && res > 0) {
        Completion cp = completion_of(CompKind::kReceived, c, res);
        cp.buf = bid;
        cp.data = bufs_ + size_t(bid) * buf_size_ + buf_off_[bid];
        if (inc_) buf_off_[bid] += uint32_t(res);
        ++buf_lends_[bid];
        if (!inc_ || !(flags & IORING_CQE_F_BUF_MORE)) {
          buf_lends_[bid] |= kKernelDone;
          --kbufs_;
        }
        deliver(out, n, cap, cp);
      } else if (bid < buf_count_ && !inc_) {
        // Classic mode: the buffer was taken though nothing arrived.
        --kbufs_;
        provide(bid);
      }
      // Incremental mode with res <= 0: nothing was consumed, the buffer is
      // still at the ring's head.
    }
    if (!more) {
      if (c->be_flags & kClosing) {
        maybe_closed(c);
        return;
      }
      if (c->be_flags & kRecvDone) return;
      if (res == 0) {
        c->be_flags |= kRecvDone;
        deliver(out, n, cap, completion_of(CompKind::kRecvEnd, c, 0));
      } else if (res == -ENOBUFS) {
        // Out of buffers: the data stays in the socket until some come back.
        if (!(c->be_flags & kPaused)) starve(c);
      } else if (res < 0 && res != -ECANCELED) {
        c->be_flags |= kRecvDone;
        deliver(out, n, cap, completion_of(CompKind::kRecvEnd, c, res));
      } else if (!(c->be_flags & kPaused)) {
        // Ended with data (res > 0) or by a cancel that a resume overtook.
        arm_recv(c);
      }
    }
  }

  // Report the end of c's send: res = all bytes, or -errno.  kSent lets the
  // engine free `sending`, so while SEND_ZC notifications are owed (the
  // kernel may still read those bytes) it waits for the last of them.
  void finish_send(Conn* c, int32_t res) {
    if (c->be_aux == 0) {
      push(CompKind::kSent, c, res);
      return;
    }
    uint32_t err = res < 0 ? uint32_t(-res) & 0xfffu : 0;
    c->be_flags = (c->be_flags & ~kSendErrMask) | kSendAll | (err << kSendErrShift);
  }

  void on_send(Conn* c, int32_t res, uint32_t flags) {
    if (flags & IORING_CQE_F_NOTIF) {
      // SEND_ZC: the kernel no longer needs the bytes of one earlier send.
      if (c->be_aux) --c->be_aux;
      if (c->be_aux == 0 && (c->be_flags & kSendAll)) {
        uint32_t err = (c->be_flags & kSendErrMask) >> kSendErrShift;
        c->be_flags &= ~(kSendAll | kSendErrMask);
        push(CompKind::kSent, c, err ? -int32_t(err) : int32_t(c->sending.len));
      }
      maybe_closed(c);
      return;
    }
    if (flags & IORING_CQE_F_MORE) ++c->be_aux;  // a notification will follow
    c->be_flags &= ~kSendBusy;
    if (c->be_flags & kClosing) {
      finish_send(c, res < 0 ? res : -ECANCELED);
      maybe_closed(c);
      return;
    }
    if (res > 0) {
      c->send_off += uint32_t(res);
      if (c->send_off < c->sending.len) {
        submit_send(c);  // short send: go on from where it stopped
        return;
      }
      finish_send(c, int32_t(c->sending.len));
      return;
    }
    finish_send(c, res < 0 ? res : -EPIPE);
  }

  Ring ring_;
  BufRing bring_;
  uint8_t* bufs_ = nullptr;
  uint32_t buf_size_ = 0;
  uint32_t buf_count_ = 0;
  uint32_t br_entries_ = 0;
  uint16_t br_tail_ = 0;       // local tail of the buffer ring
  uint16_t br_published_ = 0;  // the tail the kernel has seen
  uint32_t kbufs_ = 0;         // buffers in the kernel's hands (provided, not used up)
  bool inc_ = false;           // IOU_PBUF_RING_INC: buffers consumed incrementally
  std::vector<uint32_t> buf_off_;
  std::vector<uint32_t> buf_lends_;
  uint64_t wake_buf_ = 0;
  EventfdWake wake_;
  int lfd_ = -1;
  uint64_t listen_gen_ = 0;
  bool accept_armed_ = false;
  bool accept_paused_ = false;
  int64_t accept_resume_at_ = 0;
  bool use_zc_ = false;
  CompletionQueue pending_;
  ConnList starved_;
};

}  // namespace

Probe uring_probe() {
  // For the fallback test: behave as if this kernel had no usable io_uring.
  if (env_on("WHIRLWIND_IO_URING_PROBE_FAIL")) {
    return Probe{false, "io_uring disabled by WHIRLWIND_IO_URING_PROBE_FAIL=1"};
  }
  const KernelProbe& kp = kernel_probe();
  return Probe{kp.ok, kp.ok ? "" : kp.reason};
}

std::unique_ptr<Poller> uring_create(const BackendConfig& cfg, std::string* err) {
  if (env_on("WHIRLWIND_IO_URING_PROBE_FAIL")) {
    *err = "io_uring disabled by WHIRLWIND_IO_URING_PROBE_FAIL=1";
    return nullptr;
  }
  std::unique_ptr<UringPoller> p(new UringPoller());
  if (!p->init(cfg, err)) return nullptr;
  return p;
}

}  // namespace ww
