// engine.h - the backend-neutral engine: I/O threads, framing, the
// completion ring into JavaScript, and the send path out of it.
//
// Threads.  One JS thread (the Node environment that created the engine) and
// N I/O threads.  Each I/O thread owns a Poller (one backend instance), its
// connections, and the producer side of one ring.  The JS thread owns the
// consumer side of every ring and talks to I/O threads only through their
// inboxes (a mutex-guarded byte queue in the send-batch format) and wake().
//
// Lifecycle rules (docs/design.md has the long form):
//  - A connection's token is live from its kRecOpen record until the engine
//    decides to close it; from then on sends and closes to it are no-ops.
//    Every kRecOpen is followed by exactly one kRecClose for that token.
//  - A Conn slot is recycled only after the backend's kClosed and after every
//    deferred record that mentions it has reached the ring.
//  - shutdown() is graceful: every thread closes its connections, flushes
//    their records and ends with one kRecStopped.  stop() is the hard stop
//    used at environment cleanup: threads are woken, joined, and every socket
//    and buffer is freed, whatever JS has or has not read.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "backend.h"
#include "framer.h"
#include "layout.h"

namespace ww {

struct EngineOptions {
  BackendId backend = BackendId::kEpoll;
  uint32_t io_threads = 1;
  uint32_t ring_bytes = 1u << 20;        // per I/O thread, power of two
  uint32_t max_frame_bytes = 16u << 20;
  uint64_t send_high_water = 1u << 20;   // pending bytes that arm a drain record
  uint64_t send_low_water = 64u << 10;   // ... emitted when pending falls to this
  uint32_t recv_buffer_bytes = 64u << 10;
  uint32_t recv_buffer_count = 32;
  int backlog = 4096;
  bool protocol_check = false;           // check protocol headers and CRCs (protocol_check.h)
  uint32_t max_connections = 0;          // 0: no limit
  uint32_t max_per_address = 0;          // 0: no limit
  std::vector<uint8_t> refuse_frame;     // written to a refused connection before it closes
  uint32_t idle_timeout_ms = 0;          // 0: off
  uint32_t flush_timeout_ms = 0;         // a flushed close with no write done this long closes at once; 0: off
  std::vector<uint8_t> idle_frame;       // written before an idle connection closes
  std::vector<uint8_t> too_large_frame;  // written before a connection that sent a too-large length closes
  uint32_t keepalive_ms = 0;             // 0: off
  bool hold_new = false;                 // new connections wait for kOpAdmit / kOpRefuse
};

// The completion block shared with JS.  It outlives the engine while the JS
// ArrayBuffer that views it is alive (shared ownership).
struct SharedBlock {
  uint8_t* data = nullptr;
  size_t size = 0;
  explicit SharedBlock(size_t n);
  ~SharedBlock();
  SharedBlock(const SharedBlock&) = delete;
  SharedBlock& operator=(const SharedBlock&) = delete;
};

class Engine;

// Producer side of one ring.  Records are reserved and written locally and
// become visible to JS in one release-store of the tail per batch.
class RingWriter {
 public:
  void init(uint8_t* header, uint8_t* data, uint32_t size);
  // Room for a record with `payload` bytes: a pointer to write the payload
  // to, or nullptr when the ring is full (the stalled flag is then set).
  uint8_t* reserve(uint16_t kind, double token, uint32_t payload, uint16_t flags = 0);
  // Make everything reserved so far visible to JS.  True if anything was new.
  bool publish();
  uint32_t inline_max() const { return size_ / 4 - kRecordHeaderBytes; }

 private:
  std::atomic<uint32_t>* tail_ = nullptr;
  std::atomic<uint32_t>* head_ = nullptr;
  std::atomic<uint32_t>* stalled_ = nullptr;
  uint8_t* data_ = nullptr;
  uint32_t size_ = 0;
  uint32_t tail_local_ = 0;
  uint32_t tail_published_ = 0;
  uint32_t head_cache_ = 0;
  bool stalled_set_ = false;
 public:
  uint64_t stalls = 0;  // times reserve() found the ring full
};

class IoThread : private FramerSink {
 public:
  IoThread(Engine* engine, uint32_t index);
  ~IoThread();

  // Start the thread; it creates its poller on itself (io_uring's
  // SINGLE_ISSUER binds a ring to the thread that first uses it) and this
  // call waits for that to succeed or fail.
  bool start(std::string* err);
  // Register the listening socket on this thread (waits for the result).
  bool listen(sock_t s, std::string* err);
  void join();
  // Any thread: append inbox entries (send-batch format) and wake the thread.
  void post(const uint8_t* entries, size_t len);
  void wake();
  // JS thread: the Conn for a live token, or nullptr.
  Conn* find_live(uint32_t slot, uint32_t gen) const;

 private:
  friend class Engine;
  struct Deferred {
    bool is_recv;
    uint16_t kind;
    uint16_t flags;
    uint32_t len;
    double token;
    Conn* conn;
    Completion comp;
    uint8_t payload[kOpenPayloadMax];
  };

  void run();
  void dispatch(Completion& c);
  void drain_inbox();
  void adopt(sock_t s, uint64_t addr_key);
  void on_accepted(sock_t s);
  void refuse(sock_t s);
  void sweep_idle(int64_t now);
  void on_received(Completion& c);
  void sync_signal(bool ok, const std::string& err);
  bool sync_wait(std::string* err);
  std::atomic<uint32_t>& live_at(uint32_t slot) const { return live_[slot]; }
  void set_live(Conn* c, uint32_t gen) { live_[c->slot].store(gen, std::memory_order_release); }
  bool feed(Conn* c, const uint8_t* data, uint32_t n, uint32_t* used);
  uint16_t check_flags(const uint8_t* p, uint32_t n) const;
  // FramerSink: frames go straight to the ring or not at all, so frames of
  // one connection never overtake each other.
  bool frame(Conn* c, const uint8_t* p, uint32_t n) override;
  bool large_frame(Conn* c) override;
  void broken(Conn* c, uint32_t reason, uint32_t detail) override;
  void emit(uint16_t kind, Conn* c, double token, const void* payload, uint32_t len,
            uint16_t flags = 0);
  void request_close(Conn* c, uint32_t reason, int err, uint32_t detail, bool flush);
  bool queue_farewell(Conn* c, const std::vector<uint8_t>& f);
  void begin_close(Conn* c, uint32_t reason, int err, uint32_t detail);
  void on_sent(Conn* c, int32_t res);
  void start_send(Conn* c);
  void on_closed(Conn* c);
  void recycle(Conn* c);
  void flush_held();
  void unheld(Conn* c);
  void shutdown_all();
  void hard_cleanup();
  Conn* alloc_conn();
  Conn* conn_at(uint32_t slot) const;
  double token_of(const Conn* c) const;

  Engine* engine_;
  uint32_t index_;
  std::unique_ptr<Poller> poller_;
  std::thread thread_;
  RingWriter ring_;
  FramerLimits limits_{0, 0, 64u << 10};

  // Inbox (JS thread and thread 0 append; this thread swaps it out).
  std::mutex inbox_mu_;
  std::vector<uint8_t> inbox_;
  std::vector<uint8_t> inbox_work_;

  // Slot table: chunks of Conns that never move; the JS thread reads them.
  static constexpr uint32_t kChunkSlots = 1024;
  static constexpr uint32_t kMaxChunks = kMaxSlotsPerThread / kChunkSlots;
  std::unique_ptr<std::atomic<Conn*>[]> chunks_;
  uint32_t slots_used_ = 0;
  std::vector<uint32_t> free_slots_;
  std::atomic<uint32_t>* live_ = nullptr;  // this thread's live table (in the shared block)
  double* stats_ = nullptr;                 // this thread's counters (in the shared block)
  void stat_add(Stat s, double v = 1) { stats_[s] += v; }

  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  uint32_t sync_seq_ = 0;
  uint32_t sync_seen_ = 0;
  bool sync_ok_ = false;
  std::string sync_err_;

  // Send buffers of finished sends, kept for the next connection that queues
  // bytes (a busy echo would otherwise malloc, grow and free one per send).
  // Small and few, so idle connections still hold none.
  static constexpr uint32_t kSpareMax = 64;
  static constexpr uint32_t kSpareBytes = 16u << 10;
  std::vector<ByteBuf> spare_;
  // Coarse time of this loop turn (ms), for last_active_ms; read only when
  // the idle sweep is on.
  int64_t turn_ms_ = 0;

  std::deque<Deferred> held_;
  std::vector<Conn*> send_touched_;
  uint32_t alive_ = 0;          // conns not yet recycled
  uint32_t accept_rr_ = 0;
  bool listening_ = false;
  bool shutting_down_ = false;
  bool stopped_emitted_ = false;
  int64_t next_sweep_ms_ = 0;
};

class Engine {
 public:
  using WakeFn = void (*)(void* arg);

  Engine(const EngineOptions& opts, WakeFn wake, void* wake_arg);
  ~Engine();

  bool start(std::string* err);
  bool listen(const std::string& host, int port, bool ipv6_only, ListenResult* out,
              std::string* err);
  // JS thread: hand a send batch to the I/O threads.  Returns the number of
  // entries whose token was live; the others were ignored.  Returns -1 and
  // sets err when the batch is malformed (nothing of it is sent).
  long submit(const uint8_t* batch, size_t len, std::string* err);
  void resume(uint32_t ring);
  bool take_large(uint64_t id, uint8_t** data, uint32_t* len);
  int64_t pending_bytes(uint64_t token) const;
  bool is_live(uint64_t token) const;
  void shutdown();   // graceful; ends with kRecStopped from every thread
  bool shutdown_requested() const { return shutdown_sent_; }
  void stop();       // hard; joins every thread; idempotent

  const EngineOptions& options() const { return opts_; }
  std::shared_ptr<SharedBlock> block() const { return block_; }
  uint32_t thread_count() const { return uint32_t(threads_.size()); }
  // Byte offsets of thread i's live table and stats block in the shared block.
  size_t live_table_offset(uint32_t i) const;
  size_t stats_offset(uint32_t i) const;

 private:
  friend class IoThread;
  void notify_js();
  void release_admission(uint64_t addr_key);
  uint64_t add_large(uint8_t* data, uint32_t len);
  Conn* find_live(uint64_t token) const;

  EngineOptions opts_;
  WakeFn wake_;
  void* wake_arg_;
  std::shared_ptr<SharedBlock> block_;
  std::atomic<uint32_t>* wake_pending_ = nullptr;
  std::vector<std::unique_ptr<IoThread>> threads_;
  sock_t listener_ = kBadSock;
  bool started_ = false;
  std::atomic<bool> stopped_{false};
  bool shutdown_sent_ = false;

  std::mutex large_mu_;
  std::unordered_map<uint64_t, std::pair<uint8_t*, uint32_t>> large_;
  uint64_t large_next_ = 1;

  std::vector<std::vector<uint8_t>> staging_;  // JS thread only: per-thread submit staging

  // Admission (decided on thread 0, released by the thread that recycles).
  std::atomic<uint32_t> open_total_{0};
  std::mutex addr_mu_;
  std::unordered_map<uint64_t, uint32_t> per_addr_;
};

}  // namespace ww
