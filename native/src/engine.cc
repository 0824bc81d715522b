// engine.cc - I/O thread loop, framer, ring producer and send path.
// See engine.h for the threads and lifecycle rules, layout.h for every
// byte layout used here.
#include "engine.h"

#include "protocol_check.h"

#include <chrono>
#include <cstdlib>
#include <cstring>

namespace ww {

static_assert(sizeof(std::atomic<uint32_t>) == 4, "ring counters must be plain u32");
static_assert(std::atomic<uint32_t>::is_always_lock_free, "ring counters must be lock-free");

namespace {

inline std::atomic<uint32_t>* atomic_at(uint8_t* base, uint32_t off) {
  return reinterpret_cast<std::atomic<uint32_t>*>(base + off);
}

inline double read_f64(const uint8_t* p) {
  double d;
  std::memcpy(&d, p, 8);
  return d;
}

inline int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// FNV-1a over the peer's address text: the key of the per-address limit.
inline uint64_t addr_hash(const char* s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; ++s) h = (h ^ uint8_t(*s)) * 1099511628211ull;
  return h ? h : 1;
}

inline uint64_t token_from_double(double d) {
  if (!(d >= 0) || d > 9007199254740991.0) return 0;
  return uint64_t(d);
}

}  // namespace

// ---------------------------------------------------------------------------
// SharedBlock

SharedBlock::SharedBlock(size_t n) : size(n) {
  // calloc: the rings start zeroed (head == tail == 0, nothing stalled).
  data = static_cast<uint8_t*>(std::calloc(1, n));
}

SharedBlock::~SharedBlock() { std::free(data); }

// ---------------------------------------------------------------------------
// RingWriter

void RingWriter::init(uint8_t* header, uint8_t* data, uint32_t size) {
  tail_ = atomic_at(header, kRingTail);
  head_ = atomic_at(header, kRingHead);
  stalled_ = atomic_at(header, kRingStalled);
  data_ = data;
  size_ = size;
}

uint8_t* RingWriter::reserve(uint16_t kind, double token, uint32_t payload, uint16_t flags) {
  const uint32_t rec = align_up(kRecordHeaderBytes + payload, kRecordAlign);
  for (int attempt = 0;; ++attempt) {
    const uint32_t pos = tail_local_ & (size_ - 1);
    const uint32_t to_end = size_ - pos;
    const uint32_t need = rec <= to_end ? rec : to_end + rec;
    if (size_ - (tail_local_ - head_cache_) < need) {
      // Acquire pairs with JS's store of head: once we see the new head, JS
      // has finished reading every byte before it, so we may overwrite them.
      head_cache_ = head_->load(std::memory_order_acquire);
      if (size_ - (tail_local_ - head_cache_) < need) {
        if (attempt > 0) return nullptr;
        if (!stalled_set_) ++stalls;
        // Full.  Say so, then look once more: JS stores head and then loads
        // stalled (both seq_cst), we store stalled and then load head, so at
        // least one side sees the other and no wake-up is lost.
        stalled_->store(1, std::memory_order_seq_cst);
        stalled_set_ = true;
        head_cache_ = head_->load(std::memory_order_seq_cst);
        if (size_ - (tail_local_ - head_cache_) < need) return nullptr;
        continue;
      }
    }
    if (stalled_set_) {
      // Room again: JS need not call resume() any more.
      stalled_->store(0, std::memory_order_relaxed);
      stalled_set_ = false;
    }
    uint8_t* p = data_ + pos;
    if (rec > to_end) {
      // The record would wrap: pad to the end and start at offset 0.
      uint16_t pad = kRecPad;
      uint32_t pad_len = to_end - kRecordHeaderBytes;
      std::memcpy(p + kRecKind, &pad, 2);
      std::memset(p + 2, 0, 2);
      std::memcpy(p + kRecLength, &pad_len, 4);
      tail_local_ += to_end;
      p = data_;
    }
    std::memcpy(p + kRecKind, &kind, 2);
    std::memcpy(p + kRecFlags, &flags, 2);
    std::memcpy(p + kRecLength, &payload, 4);
    std::memcpy(p + kRecToken, &token, 8);
    tail_local_ += rec;
    return p + kRecordHeaderBytes;
  }
}

bool RingWriter::publish() {
  if (tail_local_ == tail_published_) return false;
  // Release: every record byte written above is visible to JS before the
  // tail that covers it (JS loads tail with Atomics.load, seq_cst).
  tail_->store(tail_local_, std::memory_order_seq_cst);
  tail_published_ = tail_local_;
  return true;
}

// ---------------------------------------------------------------------------
// IoThread

IoThread::IoThread(Engine* engine, uint32_t index)
    : engine_(engine), index_(index), chunks_(new std::atomic<Conn*>[kMaxChunks]) {
  for (uint32_t i = 0; i < kMaxChunks; ++i) chunks_[i].store(nullptr, std::memory_order_relaxed);
  live_ = reinterpret_cast<std::atomic<uint32_t>*>(engine->block_->data +
                                                   engine->live_table_offset(index));
  stats_ = reinterpret_cast<double*>(engine->block_->data + engine->stats_offset(index));
}

IoThread::~IoThread() {
  join();
  // Tear the backend down first (it cancels and waits for whatever the
  // kernel still holds), then free the memory those operations pointed at.
  poller_.reset();
  for (uint32_t i = 0; i < kMaxChunks; ++i) {
    Conn* chunk = chunks_[i].load(std::memory_order_relaxed);
    if (!chunk) continue;
    for (uint32_t j = 0; j < kChunkSlots; ++j) {
      framer_reset(&chunk[j]);
      chunk[j].sending.reset();
      chunk[j].queued.reset();
    }
    delete[] chunk;
  }
  for (ByteBuf& b : spare_) b.reset();
}

void IoThread::sync_signal(bool ok, const std::string& err) {
  std::lock_guard<std::mutex> lock(sync_mu_);
  sync_ok_ = ok;
  sync_err_ = err;
  ++sync_seq_;
  sync_cv_.notify_all();
}

bool IoThread::sync_wait(std::string* err) {
  std::unique_lock<std::mutex> lock(sync_mu_);
  sync_cv_.wait(lock, [this] { return sync_seq_ != sync_seen_; });
  sync_seen_ = sync_seq_;
  if (!sync_ok_) *err = sync_err_;
  return sync_ok_;
}

bool IoThread::start(std::string* err) {
  const EngineOptions& o = engine_->opts_;
  uint8_t* base = engine_->block_->data + kControlBytes +
                  size_t(index_) * (kRingHeaderBytes + o.ring_bytes);
  ring_.init(base, base + kRingHeaderBytes, o.ring_bytes);
  limits_.max_frame = o.max_frame_bytes;
  limits_.inline_max = ring_.inline_max() < o.max_frame_bytes ? ring_.inline_max() : o.max_frame_bytes;
  thread_ = std::thread([this] {
    const EngineOptions& opts = engine_->opts_;
    BackendConfig cfg;
    cfg.thread_index = index_;
    cfg.recv_buffer_bytes = opts.recv_buffer_bytes;
    cfg.recv_buffer_count = opts.recv_buffer_count;
    std::string e;
    poller_ = create_poller(opts.backend, cfg, &e);
    sync_signal(poller_ != nullptr, e);
    if (poller_) run();
  });
  if (!sync_wait(err)) {
    join();
    return false;
  }
  return true;
}

bool IoThread::listen(sock_t s, std::string* err) {
  uint8_t entry[kBatchHeaderBytes] = {};
  double h = double(uint64_t(s));
  uint32_t op = kOpListen;
  std::memcpy(entry, &h, 8);
  std::memcpy(entry + 12, &op, 4);
  post(entry, sizeof entry);
  return sync_wait(err);
}

void IoThread::join() {
  if (thread_.joinable()) thread_.join();
}

void IoThread::wake() {
  if (poller_) poller_->wake();
}

void IoThread::post(const uint8_t* entries, size_t len) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    was_empty = inbox_.empty();
    inbox_.insert(inbox_.end(), entries, entries + len);
  }
  // A non-empty inbox already has a wake on its way.
  if (was_empty) wake();
}

Conn* IoThread::conn_at(uint32_t slot) const {
  Conn* chunk = chunks_[slot / kChunkSlots].load(std::memory_order_acquire);
  return chunk ? &chunk[slot % kChunkSlots] : nullptr;
}

Conn* IoThread::find_live(uint32_t slot, uint32_t gen) const {
  if (slot >= kMaxSlotsPerThread || gen == 0) return nullptr;
  if (live_[slot].load(std::memory_order_acquire) != gen) return nullptr;
  return conn_at(slot);
}

double IoThread::token_of(const Conn* c) const {
  return double(token_encode(index_, c->slot, c->gen));
}

Conn* IoThread::alloc_conn() {
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    if (slots_used_ >= kMaxSlotsPerThread) return nullptr;
    slot = slots_used_;
    uint32_t ci = slot / kChunkSlots;
    if (!chunks_[ci].load(std::memory_order_relaxed)) {
      Conn* chunk = new (std::nothrow) Conn[kChunkSlots];
      if (!chunk) return nullptr;
      for (uint32_t i = 0; i < kChunkSlots; ++i) chunk[i].slot = ci * kChunkSlots + i;
      chunks_[ci].store(chunk, std::memory_order_release);
    }
    ++slots_used_;
  }
  Conn* c = conn_at(slot);
  c->state = ConnState::kOpen;
  c->send_inflight = c->close_after_flush = c->recv_ended = false;
  c->drain_owed.store(false, std::memory_order_relaxed);
  c->send_touched = false;
  c->framer_broken = false;
  c->held_for_admission = false;
  c->close_reason = 0;
  c->held = 0;
  c->recycle_when_unheld = false;
  c->paused_by_app = c->paused_by_ring = false;
  c->pending_bytes.store(0, std::memory_order_relaxed);
  ++alive_;
  return c;
}

void IoThread::run() {
  static constexpr int kBatch = 256;
  Completion comps[kBatch];
  Engine* e = engine_;
  while (true) {
    if (e->stopped_) break;
    int timeout = -1;
    // The sweep serves both timeouts; it runs at the pace of the shorter.
    const uint32_t idle = e->opts_.idle_timeout_ms, flush = e->opts_.flush_timeout_ms;
    const uint32_t pace = idle && flush ? (idle < flush ? idle : flush) : (idle ? idle : flush);
    if (pace) {
      int64_t now = now_ms();
      if (now >= next_sweep_ms_) {
        sweep_idle(now);
        // A coarse sweep: every connection is looked at once per quarter of
        // the timeout (at least every 50 ms), not one timer per connection.
        next_sweep_ms_ = now + (pace / 4 > 50 ? pace / 4 : 50);
      }
      timeout = int(next_sweep_ms_ - now);
    }
    int n = poller_->wait(comps, kBatch, timeout);
    if (pace) turn_ms_ = now_ms();
    stat_add(kStatWakeups);
    for (int i = 0; i < n; ++i) dispatch(comps[i]);
    for (Conn* c : send_touched_) {
      c->send_touched = false;
      if (c->state == ConnState::kOpen && !c->send_inflight && c->queued.len) start_send(c);
    }
    send_touched_.clear();
    if (!held_.empty()) flush_held();
    if (shutting_down_ && alive_ == 0 && held_.empty() && !stopped_emitted_) {
      emit(kRecStopped, nullptr, 0, nullptr, 0);
      stopped_emitted_ = held_.empty();
    }
    stats_[kStatDeferred] = double(held_.size());
    stats_[kStatRingStalls] = double(ring_.stalls);
    if (ring_.publish()) e->notify_js();
    if (stopped_emitted_) break;
  }
  hard_cleanup();
}

void IoThread::dispatch(Completion& c) {
  switch (c.kind) {
    case CompKind::kWake:
      drain_inbox();
      break;
    case CompKind::kAccepted:
      on_accepted(c.sock);
      break;
    case CompKind::kAcceptError:
      stat_add(kStatAcceptErrors);
      break;
    case CompKind::kReceived:
      on_received(c);
      break;
    case CompKind::kRecvEnd: {
      Conn* conn = c.conn;
      conn->recv_ended = true;
      if (conn->state != ConnState::kOpen) break;
      if (c.res == 0) {
        // The peer finished sending: write what is already queued, then close.
        request_close(conn, kClosePeer, 0, 0, true);
      } else {
        begin_close(conn, kCloseError, -c.res, 0);
      }
      break;
    }
    case CompKind::kSent:
      on_sent(c.conn, c.res);
      break;
    case CompKind::kClosed:
      on_closed(c.conn);
      break;
  }
}

void IoThread::drain_inbox() {
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    inbox_work_.swap(inbox_);
  }
  const uint8_t* p = inbox_work_.data();
  const uint8_t* end = p + inbox_work_.size();
  while (p + kBatchHeaderBytes <= end) {
    double tok = read_f64(p);
    uint32_t len, op;
    std::memcpy(&len, p + 8, 4);
    std::memcpy(&op, p + 12, 4);
    const uint8_t* body = p + kBatchHeaderBytes;
    p = body + align_up(len, kBatchAlign);
    if (op == kOpAdopt) {
      uint64_t key = 0;
      if (len >= 8) std::memcpy(&key, body, 8);
      adopt(sock_t(uint64_t(tok)), key);
      continue;
    }
    if (op == kOpListen) {
      std::string err;
      bool ok = poller_->listen(sock_t(uint64_t(tok)), &err);
      listening_ = ok;
      sync_signal(ok, err);
      continue;
    }
    if (op == kOpStopListen) {
      if (listening_) {
        poller_->stop_listen();
        listening_ = false;
      }
      continue;
    }
    if (op == kOpShutdown) {
      shutdown_all();
      continue;
    }
    TokenParts t = token_decode(token_from_double(tok));
    if (t.slot >= slots_used_) continue;
    Conn* c = conn_at(t.slot);
    // The generation check makes stale tokens harmless: the slot may already
    // serve a newer connection.
    if (!c || c->gen != t.gen || c->state != ConnState::kOpen) {
      stat_add(kStatStaleOps);
      continue;
    }
    switch (op) {
      case kOpSend:
        if (c->close_after_flush) {  // sends after a flushed close are not taken
          stat_add(kStatStaleOps);
          break;
        }
        stat_add(kStatSendsOut);
        if (c->queued.data == nullptr && !spare_.empty()) {
          c->queued = spare_.back();
          spare_.pop_back();
        }
        if (!c->queued.append(body, len)) {
          begin_close(c, kCloseOutOfMemory, 0, len);
          break;
        }
        stat_add(kStatPendingBytes, len);
        if (!c->send_touched) {
          c->send_touched = true;
          send_touched_.push_back(c);
        }
        break;
      case kOpClose:
        begin_close(c, kCloseLocal, 0, 0);
        break;
      case kOpCloseFlushed:
        request_close(c, kCloseLocalFlushed, 0, 0, true);
        break;
      case kOpPauseRecv:
        c->paused_by_app = true;
        poller_->pause_recv(c);
        break;
      case kOpResumeRecv:
        c->paused_by_app = false;
        if (!c->held_for_admission && !c->paused_by_ring) poller_->resume_recv(c);
        break;
      case kOpAdmit:
        if (c->held_for_admission) {
          c->held_for_admission = false;
          std::string err;
          if (!poller_->start_recv(c, &err)) begin_close(c, kCloseError, 0, 0);
        }
        break;
      case kOpRefuse: {
        stat_add(kStatRefused);
        queue_farewell(c, engine_->opts_.refuse_frame);
        request_close(c, kCloseRefused, 0, 0, true);
        break;
      }
      default:
        break;
    }
  }
  inbox_work_.clear();
  if (inbox_work_.capacity() > (1u << 20)) inbox_work_.shrink_to_fit();
}

// Thread 0: admission (limits), then deal the connection to a thread.
void IoThread::on_accepted(sock_t s) {
  if (shutting_down_) {
    net_close(s);
    return;
  }
  Engine* e = engine_;
  const EngineOptions& o = e->opts_;
  if (o.max_connections && e->open_total_.load(std::memory_order_relaxed) >= o.max_connections) {
    refuse(s);
    return;
  }
  uint64_t key = 0;
  if (o.max_per_address) {
    char addr[64] = {0};
    int port = 0, family = 0;
    net_peer(s, addr, sizeof addr, &port, &family);
    key = addr_hash(addr);
    std::lock_guard<std::mutex> lock(e->addr_mu_);
    uint32_t& n = e->per_addr_[key];
    if (n >= o.max_per_address) {
      if (n == 0) e->per_addr_.erase(key);
      refuse(s);
      return;
    }
    ++n;
  }
  e->open_total_.fetch_add(1, std::memory_order_relaxed);
  uint32_t n = uint32_t(e->threads_.size());
  uint32_t target = accept_rr_++ % n;
  if (target == index_) {
    adopt(s, key);
    return;
  }
  uint8_t entry[kBatchHeaderBytes + 8] = {};
  double h = double(uint64_t(s));
  uint32_t len = 8, op = kOpAdopt;
  std::memcpy(entry, &h, 8);
  std::memcpy(entry + 8, &len, 4);
  std::memcpy(entry + 12, &op, 4);
  std::memcpy(entry + kBatchHeaderBytes, &key, 8);
  e->threads_[target]->post(entry, sizeof entry);
}

// Over a limit: say why (the farewell frame, if the application gave one),
// then close.  The connection never reaches JS; it is counted.
void IoThread::refuse(sock_t s) {
  const std::vector<uint8_t>& f = engine_->opts_.refuse_frame;
  if (!f.empty()) net_try_send(s, f.data(), f.size());
  net_close(s);
  stat_add(kStatRefused);
}

void IoThread::adopt(sock_t s, uint64_t addr_key) {
  Conn* c = shutting_down_ ? nullptr : alloc_conn();
  if (!c) {
    net_close(s);
    engine_->release_admission(addr_key);
    return;
  }
  c->sock = s;
  c->addr_key = addr_key;
  c->last_active_ms = now_ms();
  net_set_nodelay(s);
  net_set_keepalive(s, engine_->opts_.keepalive_ms, engine_->opts_.keepalive_ms / 3);
  uint8_t payload[kOpenPayloadMax];
  char addr[64] = {0};
  int port = 0, family = 0;
  net_peer(s, addr, sizeof addr, &port, &family);
  size_t alen = std::strlen(addr);
  uint16_t p16 = uint16_t(port);
  std::memcpy(payload, &p16, 2);
  payload[2] = uint8_t(family);
  payload[3] = uint8_t(alen);
  std::memcpy(payload + 4, addr, alen);
  set_live(c, c->gen);
  stat_add(kStatAccepted);
  stat_add(kStatOpen);
  const bool hold = engine_->opts_.hold_new;
  c->held_for_admission = hold;
  emit(kRecOpen, c, token_of(c), payload, uint32_t(4 + alen), hold ? kRecFlagHeld : 0);
  if (hold) return;  // JS's accept hook decides: kOpAdmit or kOpRefuse
  std::string err;
  if (!poller_->start_recv(c, &err)) begin_close(c, kCloseError, 0, 0);
}

void IoThread::emit(uint16_t kind, Conn* c, double token, const void* payload, uint32_t len,
                    uint16_t flags) {
  if (held_.empty()) {
    uint8_t* p = ring_.reserve(kind, token, len, flags);
    if (p) {
      if (len) std::memcpy(p, payload, len);
      return;
    }
  }
  // The ring is full (or older records wait): keep this one, in order.
  Deferred d;
  d.is_recv = false;
  d.kind = kind;
  d.flags = flags;
  d.len = len;
  d.token = token;
  d.conn = c;
  if (len) std::memcpy(d.payload, payload, len);
  if (c) ++c->held;
  held_.push_back(d);
}

void IoThread::on_received(Completion& comp) {
  Conn* c = comp.conn;
  // Bytes that arrive after the close was decided are not delivered.
  if (c->state != ConnState::kOpen || c->close_after_flush) {
    poller_->release(comp.buf);
    return;
  }
  c->last_active_ms = turn_ms_;
  uint32_t used = 0;
  // Older deferred records go first; this buffer waits behind them.
  bool done = held_.empty() && feed(c, comp.data, uint32_t(comp.res), &used);
  if (done) {
    poller_->release(comp.buf);
    return;
  }
  // Keep the buffer lent: the backend stops receiving when it runs out, and
  // that is how a full ring turns into TCP backpressure.
  Deferred d;
  d.is_recv = true;
  d.kind = 0;
  d.flags = 0;
  d.len = 0;
  d.token = 0;
  d.conn = c;
  d.comp = comp;
  d.comp.used = used;
  ++c->held;
  held_.push_back(d);
  // No more from this connection until what it has waiting is in the ring
  // (unheld): others' data queues behind one buffer of it, not behind as
  // many as the backend would lend it.
  if (!c->paused_by_ring) {
    c->paused_by_ring = true;
    poller_->pause_recv(c);
  }
}

uint16_t IoThread::check_flags(const uint8_t* p, uint32_t n) const {
  if (!engine_->opts_.protocol_check) return 0;
  return uint16_t(kRecFlagChecked | protocol_check(p, n));
}

bool IoThread::frame(Conn* c, const uint8_t* p, uint32_t n) {
  uint8_t* dst = ring_.reserve(kRecFrame, token_of(c), n, check_flags(p, n));
  if (!dst) return false;
  if (n) std::memcpy(dst, p, n);  // a zero-length frame may come with p null (framer.cc)
  stat_add(kStatFramesIn);
  stat_add(kStatBytesIn, n);
  return true;
}

bool IoThread::large_frame(Conn* c) {
  // Out of line: the record names the buffer, JS takes it without a copy.
  uint8_t* rec = ring_.reserve(kRecFrameLarge, token_of(c), kLargePayloadBytes,
                               check_flags(c->part, c->frame_len));
  if (!rec) return false;
  uint32_t len = c->frame_len;
  stat_add(kStatFramesIn);
  stat_add(kStatBytesIn, len);
  uint64_t id = engine_->add_large(c->part, len);
  c->part = nullptr;
  double did = double(id);
  uint32_t zero = 0;
  std::memcpy(rec, &did, 8);
  std::memcpy(rec + 8, &len, 4);
  std::memcpy(rec + 12, &zero, 4);
  return true;
}

void IoThread::broken(Conn* c, uint32_t reason, uint32_t detail) {
  if (reason == kCloseFrameTooLarge && c->state == ConnState::kOpen && !c->close_after_flush &&
      queue_farewell(c, engine_->opts_.too_large_frame)) {
    // Close once the farewell is written.  Nothing more is read: the framer
    // discards the rest anyway, and a paused connection pushes back on a
    // peer that keeps sending the frame.
    c->paused_by_app = true;
    poller_->pause_recv(c);
    request_close(c, reason, 0, detail, true);
    return;
  }
  begin_close(c, reason, 0, detail);
}

// The bytes the application gave for telling a peer why it is being closed
// (refuseFrame, idleFrame, tooLargeFrame), queued after what is queued to it
// already, and the send started.  False when there are none or they could
// not be buffered: then the caller closes without them.
bool IoThread::queue_farewell(Conn* c, const std::vector<uint8_t>& f) {
  if (f.empty() || !c->queued.append(f.data(), uint32_t(f.size()))) return false;
  c->pending_bytes.fetch_add(f.size(), std::memory_order_relaxed);
  stat_add(kStatPendingBytes, double(f.size()));
  if (!c->send_inflight) start_send(c);
  return true;
}

bool IoThread::feed(Conn* c, const uint8_t* data, uint32_t n, uint32_t* used) {
  return framer_feed(c, data, n, used, limits_, *this);
}

void IoThread::flush_held() {
  while (!held_.empty()) {
    Deferred& d = held_.front();
    if (d.is_recv) {
      uint32_t used = d.comp.used;
      // Feed with the held queue treated as empty for this entry: it is the
      // oldest record there is.
      Deferred keep = d;
      held_.pop_front();
      bool done = feed(keep.conn, keep.comp.data, uint32_t(keep.comp.res), &used);
      if (!done) {
        keep.comp.used = used;
        held_.push_front(keep);
        return;
      }
      poller_->release(keep.comp.buf);
      unheld(keep.conn);
      continue;
    }
    uint8_t* p = ring_.reserve(d.kind, d.token, d.len, d.flags);
    if (!p) return;
    if (d.len) std::memcpy(p, d.payload, d.len);
    Conn* c = d.conn;
    held_.pop_front();
    if (c) unheld(c);
  }
}

// One of c's deferred entries is in the ring.
void IoThread::unheld(Conn* c) {
  if (--c->held != 0) return;
  if (c->recycle_when_unheld) {
    recycle(c);
    return;
  }
  if (c->paused_by_ring) {
    c->paused_by_ring = false;
    if (c->state == ConnState::kOpen && !c->paused_by_app && !c->held_for_admission) poller_->resume_recv(c);
  }
}

void IoThread::request_close(Conn* c, uint32_t reason, int err, uint32_t detail, bool flush) {
  if (c->state != ConnState::kOpen) return;
  if (flush && (c->send_inflight || c->queued.len)) {
    // New sends are no longer taken; close when the last byte is written.
    if (!c->close_after_flush) {
      c->close_after_flush = true;
      c->close_reason = uint8_t(reason);
      c->close_detail = detail;
      c->last_active_ms = turn_ms_;  // the sweep gives the flush a whole flushTimeoutMs
      set_live(c, 0);
    }
    return;
  }
  begin_close(c, reason, err, detail);
}

void IoThread::begin_close(Conn* c, uint32_t reason, int err, uint32_t detail) {
  if (c->state != ConnState::kOpen) return;
  c->state = ConnState::kClosing;
  c->close_reason = uint8_t(reason);
  set_live(c, 0);
  stat_add(kStatOpen, -1);
  if (reason >= 1 && reason <= kCloseRefused) stat_add(Stat(kStatClosedBase + reason - 1));
  uint8_t payload[kClosePayloadBytes];
  int32_t e = err;
  std::memcpy(payload, &reason, 4);
  std::memcpy(payload + 4, &e, 4);
  std::memcpy(payload + 8, &detail, 4);
  emit(kRecClose, c, token_of(c), payload, kClosePayloadBytes);
  stat_add(kStatPendingBytes, -double(c->queued.len));  // never to be written
  c->queued.reset();
  poller_->close(c);
}

void IoThread::start_send(Conn* c) {
  c->sending.swap(c->queued);
  c->send_off = 0;
  c->send_inflight = true;
  poller_->send(c);
}

void IoThread::on_sent(Conn* c, int32_t res) {
  c->send_inflight = false;
  uint32_t sent = c->sending.len;
  stat_add(kStatPendingBytes, -double(sent));  // written, or never to be
  if (c->sending.cap <= kSpareBytes && spare_.size() < kSpareMax) {
    c->sending.len = 0;
    spare_.push_back(c->sending);
    c->sending = ByteBuf();
  } else {
    c->sending.reset();
  }
  if (c->state != ConnState::kOpen) return;
  if (res < 0) {
    begin_close(c, kCloseError, -res, 0);
    return;
  }
  stat_add(kStatBytesOut, sent);
  c->last_active_ms = turn_ms_;
  uint64_t left = c->pending_bytes.fetch_sub(sent, std::memory_order_relaxed) - sent;
  if (c->queued.len) {
    start_send(c);
  } else if (c->close_after_flush) {
    begin_close(c, c->close_reason, 0, c->close_detail);
    return;
  }
  const uint64_t low = engine_->opts_.send_low_water;
  if (left <= low && c->drain_owed.load(std::memory_order_relaxed) &&
      c->drain_owed.exchange(false, std::memory_order_relaxed)) {
    // submit() may have added (and armed) since `left` was taken: owe the
    // drain on if pending is up again, else report it.
    if (c->pending_bytes.load(std::memory_order_relaxed) <= low) {
      emit(kRecDrain, c, token_of(c), nullptr, 0);
    } else {
      c->drain_owed.store(true, std::memory_order_relaxed);
    }
  }
}

void IoThread::on_closed(Conn* c) {
  if (c->held) {
    c->recycle_when_unheld = true;
    return;
  }
  recycle(c);
}

void IoThread::recycle(Conn* c) {
  framer_reset(c);
  stat_add(kStatPendingBytes, -double(c->queued.len));  // non-zero only after hard_cleanup's closes
  c->sending.reset();
  c->queued.reset();
  c->sock = kBadSock;
  c->state = ConnState::kFree;
  c->gen = gen_next(c->gen);
  c->recycle_when_unheld = false;
  c->be_ptr = nullptr;
  c->be_next = nullptr;
  c->be_flags = 0;
  c->be_aux = 0;
  free_slots_.push_back(c->slot);
  --alive_;
  engine_->release_admission(c->addr_key);
  c->addr_key = 0;
}

void IoThread::sweep_idle(int64_t now) {
  const EngineOptions& o = engine_->opts_;
  for (uint32_t s = 0; s < slots_used_; ++s) {
    Conn* c = conn_at(s);
    if (!c || c->state != ConnState::kOpen) continue;
    if (c->close_after_flush) {
      // A flushed close (closeConnection, an idle or refuse or too-large
      // frame) to a peer that reads nothing would wait for ever: after
      // flushTimeoutMs with no send done since the close began, close at
      // once (reason idle; what was not written is dropped).
      if (o.flush_timeout_ms && now - c->last_active_ms >= int64_t(o.flush_timeout_ms)) begin_close(c, kCloseIdle, 0, o.flush_timeout_ms);
      continue;
    }
    if (!o.idle_timeout_ms || now - c->last_active_ms < int64_t(o.idle_timeout_ms)) continue;
    // Tell the peer why (if the application gave the bytes), then close once that is written.
    if (queue_farewell(c, o.idle_frame)) request_close(c, kCloseIdle, 0, o.idle_timeout_ms, true);
    else begin_close(c, kCloseIdle, 0, o.idle_timeout_ms);
  }
}

void IoThread::shutdown_all() {
  if (shutting_down_) return;
  shutting_down_ = true;
  if (listening_) {
    poller_->stop_listen();
    listening_ = false;
  }
  for (uint32_t s = 0; s < slots_used_; ++s) {
    Conn* c = conn_at(s);
    if (c && c->state == ConnState::kOpen) begin_close(c, kCloseServerClosing, 0, 0);
  }
}

void IoThread::hard_cleanup() {
  // Give lent buffers back and forget deferred records: JS will not read them.
  for (Deferred& d : held_) {
    if (d.is_recv) poller_->release(d.comp.buf);
  }
  held_.clear();
  if (listening_) {
    poller_->stop_listen();
    listening_ = false;
  }
  for (uint32_t s = 0; s < slots_used_; ++s) {
    Conn* c = conn_at(s);
    if (c && c->state == ConnState::kOpen) {
      c->state = ConnState::kClosing;
      set_live(c, 0);
      poller_->close(c);
    }
  }
  // Let the backend finish those closes (io_uring and IOCP report them
  // asynchronously), for a bounded time: a stop must never hang.
  // The listener too: io_uring's accept keeps the port bound until the
  // kernel has ended it (before this wait it stayed bound until the engine
  // was garbage collected, and a new server could not listen on it).
  Completion comps[64];
  for (int round = 0; (alive_ > 0 || poller_->listen_ending()) && round < 100; ++round) {
    int n = poller_->wait(comps, 64, 10);
    for (int i = 0; i < n; ++i) {
      Completion& c = comps[i];
      if (c.kind == CompKind::kReceived) poller_->release(c.buf);
      if (c.kind == CompKind::kAccepted) net_close(c.sock);
      if (c.kind == CompKind::kSent) c.conn->send_inflight = false;
      if (c.kind == CompKind::kClosed) recycle(c.conn);
    }
  }
  // The poller itself stays until the destructor: other threads may still
  // call wake() on it, and the kernel may still own buffers of ours until it
  // is torn down.
}

// ---------------------------------------------------------------------------
// Engine

Engine::Engine(const EngineOptions& opts, WakeFn wake, void* wake_arg)
    : opts_(opts), wake_(wake), wake_arg_(wake_arg) {}

Engine::~Engine() {
  stop();
  std::lock_guard<std::mutex> lock(large_mu_);
  for (auto& kv : large_) std::free(kv.second.first);
  large_.clear();
}

bool Engine::start(std::string* err) {
  if (!net_init(err)) return false;
  const size_t n = opts_.io_threads;
  const size_t total = stats_offset(uint32_t(n));
  block_ = std::make_shared<SharedBlock>(total);
  if (!block_->data) {
    *err = "out of memory allocating the completion rings";
    return false;
  }
  uint32_t* ctl = reinterpret_cast<uint32_t*>(block_->data);
  ctl[kCtlVersion / 4] = kLayoutVersion;
  ctl[kCtlRingCount / 4] = uint32_t(n);
  ctl[kCtlRingBytes / 4] = opts_.ring_bytes;
  wake_pending_ = atomic_at(block_->data, kCtlWakePending);
  staging_.resize(n);
  for (size_t i = 0; i < n; ++i) threads_.emplace_back(new IoThread(this, uint32_t(i)));
  for (size_t i = 0; i < n; ++i) {
    if (!threads_[i]->start(err)) {
      stop();
      return false;
    }
  }
  started_ = true;
  return true;
}

size_t Engine::stats_offset(uint32_t i) const {
  return live_table_offset(opts_.io_threads) + size_t(i) * kStatsBytes;
}

size_t Engine::live_table_offset(uint32_t i) const {
  return kControlBytes + size_t(opts_.io_threads) * (size_t(kRingHeaderBytes) + opts_.ring_bytes) +
         size_t(i) * kMaxSlotsPerThread * sizeof(uint32_t);
}

bool Engine::listen(const std::string& host, int port, bool ipv6_only, ListenResult* out,
                    std::string* err) {
  if (!started_ || stopped_) {
    *err = "the server is closed";
    return false;
  }
  if (listener_ != kBadSock) {
    *err = "this server is already listening";
    return false;
  }
  if (!net_listen(host, port, opts_.backlog, ipv6_only, out, err)) return false;
  // Thread 0 accepts; a poller is only ever touched by its own thread, so
  // the listener is handed over through the inbox and we wait for the answer.
  std::string e2;
  if (!threads_[0]->listen(out->sock, &e2)) {
    net_close(out->sock);
    *err = "listen: " + e2;
    return false;
  }
  listener_ = out->sock;
  return true;
}

void Engine::release_admission(uint64_t key) {
  open_total_.fetch_sub(1, std::memory_order_relaxed);
  if (!opts_.max_per_address || !key) return;
  std::lock_guard<std::mutex> lock(addr_mu_);
  auto it = per_addr_.find(key);
  if (it != per_addr_.end() && --it->second == 0) per_addr_.erase(it);
}

void Engine::notify_js() {
  // One wake-up per batch: only the I/O thread that flips wake_pending from 0
  // to 1 asks for a JS call; JS clears it (seq_cst) before it loads the tails.
  if (wake_pending_->exchange(1, std::memory_order_seq_cst) == 0) wake_(wake_arg_);
}

Conn* Engine::find_live(uint64_t token) const {
  TokenParts t = token_decode(token);
  if (t.thread >= threads_.size()) return nullptr;
  return threads_[t.thread]->find_live(t.slot, t.gen);
}

bool Engine::is_live(uint64_t token) const { return find_live(token) != nullptr; }

int64_t Engine::pending_bytes(uint64_t token) const {
  Conn* c = find_live(token);
  return c ? int64_t(c->pending_bytes.load(std::memory_order_relaxed)) : -1;
}

long Engine::submit(const uint8_t* batch, size_t len, std::string* err) {
  if (!started_ || stopped_) {
    *err = "the server is closed";
    return -1;
  }
  // Validate the whole batch before anything is handed on.
  for (size_t off = 0; off < len;) {
    if (len - off < kBatchHeaderBytes) {
      *err = "send batch: truncated entry header at offset " + std::to_string(off);
      return -1;
    }
    uint32_t n, op;
    std::memcpy(&n, batch + off + 8, 4);
    std::memcpy(&op, batch + off + 12, 4);
    if (op != kOpSend && op != kOpClose && op != kOpCloseFlushed && op != kOpPauseRecv &&
        op != kOpResumeRecv && op != kOpAdmit && op != kOpRefuse) {
      *err = "send batch: unknown op " + std::to_string(op) + " at offset " + std::to_string(off);
      return -1;
    }
    size_t step = kBatchHeaderBytes + size_t(align_up(n, kBatchAlign));
    if (n > 0xfffffff0u || step > len - off) {
      *err = "send batch: entry length " + std::to_string(n) + " runs past the end";
      return -1;
    }
    off += step;
  }
  long live = 0;
  const bool one_thread = threads_.size() == 1;
  for (size_t off = 0; off < len;) {
    uint32_t n;
    uint32_t op;
    std::memcpy(&n, batch + off + 8, 4);
    std::memcpy(&op, batch + off + 12, 4);
    size_t step = kBatchHeaderBytes + size_t(align_up(n, kBatchAlign));
    uint64_t tok = token_from_double(read_f64(batch + off));
    TokenParts t = token_decode(tok);
    Conn* c = t.thread < threads_.size() ? threads_[t.thread]->find_live(t.slot, t.gen) : nullptr;
    if (c) {
      ++live;
      if (op == kOpSend) {
        // Arm the drain here, not on the I/O thread: by the time that thread
        // reads the inbox it may have written pending below the mark again,
        // and a caller that saw pendingBytes above it would wait for ever.
        // (The inbox mutex in post() publishes the flag with the bytes.)
        uint64_t now = c->pending_bytes.fetch_add(n, std::memory_order_relaxed) + n;
        if (now > opts_.send_high_water && !c->drain_owed.load(std::memory_order_relaxed)) {
          c->drain_owed.store(true, std::memory_order_relaxed);
        }
      }
      if (!one_thread) {
        std::vector<uint8_t>& st = staging_[t.thread];
        st.insert(st.end(), batch + off, batch + off + step);
      }
    }
    off += step;
  }
  if (one_thread) {
    // One I/O thread: hand the batch over as it is (the thread skips
    // entries whose token went stale, exactly as it would anyway).
    if (live) threads_[0]->post(batch, len);
    return live;
  }
  for (size_t i = 0; i < threads_.size(); ++i) {
    if (staging_[i].empty()) continue;
    threads_[i]->post(staging_[i].data(), staging_[i].size());
    staging_[i].clear();
    if (staging_[i].capacity() > (1u << 20)) staging_[i].shrink_to_fit();
  }
  return live;
}

void Engine::resume(uint32_t ring) {
  if (ring < threads_.size()) threads_[ring]->wake();
}

uint64_t Engine::add_large(uint8_t* data, uint32_t len) {
  std::lock_guard<std::mutex> lock(large_mu_);
  uint64_t id = large_next_++;
  large_[id] = {data, len};
  return id;
}

bool Engine::take_large(uint64_t id, uint8_t** data, uint32_t* len) {
  std::lock_guard<std::mutex> lock(large_mu_);
  auto it = large_.find(id);
  if (it == large_.end()) return false;
  *data = it->second.first;
  *len = it->second.second;
  large_.erase(it);
  return true;
}

void Engine::shutdown() {
  if (!started_ || stopped_ || shutdown_sent_) return;
  shutdown_sent_ = true;
  uint8_t entry[kBatchHeaderBytes] = {};
  uint32_t op = kOpShutdown;
  std::memcpy(entry + 12, &op, 4);
  for (auto& t : threads_) t->post(entry, sizeof entry);
}

void Engine::stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& t : threads_) t->wake();
  for (auto& t : threads_) t->join();
  if (listener_ != kBadSock) {
    net_close(listener_);
    listener_ = kBadSock;
  }
}

}  // namespace ww
