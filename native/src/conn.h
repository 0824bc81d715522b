// conn.h - one connection as the engine and the backends see it.
//
// Conn objects live in an I/O thread's slot table (engine.h) and never move
// or get freed while the engine lives, so the JS thread may read the two
// atomics below at any time to answer "is this token open" and "how many
// bytes are waiting to be sent" without a lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "net.h"

namespace ww {

// A growable byte buffer that holds no memory while empty (idle connections
// must cost next to nothing).
struct ByteBuf {
  uint8_t* data = nullptr;
  uint32_t len = 0;
  uint32_t cap = 0;

  bool append(const uint8_t* p, uint32_t n) {
    if (len + n > cap) {
      uint64_t want = cap ? uint64_t(cap) * 2 : 256;
      while (want < uint64_t(len) + n) want *= 2;
      if (want > 0xffffffffu) return false;
      void* q = std::realloc(data, size_t(want));
      if (!q) return false;
      data = static_cast<uint8_t*>(q);
      cap = uint32_t(want);
    }
    std::memcpy(data + len, p, n);
    len += n;
    return true;
  }
  void reset() {
    std::free(data);
    data = nullptr;
    len = cap = 0;
  }
  void swap(ByteBuf& o) {
    ByteBuf t = *this;
    *this = o;
    o = t;
  }
};

enum class ConnState : uint8_t {
  kFree = 0,
  kOpen = 1,      // receiving and sending
  kClosing = 2,   // close decided; waiting for the backend's kClosed
};

struct Conn {
  // --- read by the JS thread (lock-free) ---------------------------------
  // (Whether a token is live is in the engine's live table, which JS reads
  // directly; see layout.h.)
  // Bytes accepted by submit() and not yet written to the socket.
  std::atomic<uint64_t> pending_bytes{0};
  // A kRecDrain is owed when pending falls to the low-water mark.  Armed by
  // submit() on the JS thread when its bytes take pending above the high-water
  // mark, before they are posted, so a JS thread that reads pending_bytes
  // above the mark always gets its drain; taken (exchange) by the I/O thread.
  std::atomic<bool> drain_owed{false};

  // --- owned by the I/O thread -------------------------------------------
  sock_t sock = kBadSock;
  uint32_t slot = 0;
  uint32_t gen = 1;
  ConnState state = ConnState::kFree;
  bool send_inflight = false;     // backend owns `sending`
  bool close_after_flush = false; // close once sending and queued are empty
  bool recv_ended = false;        // kRecvEnd seen
  bool send_touched = false;      // queued grew during this loop turn
  bool held_for_admission = false; // adopted, not receiving until kOpAdmit
  uint8_t close_reason = 0;
  uint32_t close_detail = 0;      // for a close that waits for its flush
  uint32_t held = 0;              // deferred completions that still need this conn
  uint64_t addr_key = 0;          // hash of the peer address (per-address limit)
  int64_t last_active_ms = 0;     // last receive or completed send (idle sweep)
  bool recycle_when_unheld = false;
  // Reading is paused by the application (pauseReading, or a frame too large)
  // or by the engine while this connection has deferred records: a
  // connection may hold at most one received buffer behind a full ring, so a
  // peer that floods cannot queue the ring's next megabytes ahead of others.
  bool paused_by_app = false;
  bool paused_by_ring = false;

  // Framer state: a frame in progress (header bytes, then payload).
  uint8_t hdr[4];
  uint8_t hdr_have = 0;
  uint32_t frame_len = 0;         // valid once hdr_have == 4
  uint32_t frame_have = 0;        // payload bytes collected in `part`
  uint8_t* part = nullptr;        // payload so far (malloc'd, grows as bytes arrive)
  uint32_t part_cap = 0;
  bool framer_broken = false;     // a bad length was seen: discard the rest (framer.h)

  // Outbound: the backend writes `sending` while the engine appends to `queued`.
  ByteBuf sending;
  uint32_t send_off = 0;          // for backends that write in pieces
  ByteBuf queued;

  // Backend scratch: each backend keeps what it needs per connection here.
  // The engine never reads these; it zeroes them when it recycles the slot,
  // so a backend must have released what be_ptr points to by its kClosed.
  void* be_ptr = nullptr;
  Conn* be_next = nullptr;
  uint32_t be_flags = 0;
  uint32_t be_aux = 0;
};

}  // namespace ww
