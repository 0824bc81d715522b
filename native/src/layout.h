// layout.h - every bit layout whirlwind shares between native code and
// TypeScript: connection tokens, the completion ring, ring records and the
// send-batch entries.  Nothing else in the tree may shift or mask these
// values by hand; TypeScript reads the same numbers from the addon's
// `layout` export and refuses to load when they disagree (src/layout.ts).
#pragma once

#include <cstdint>

namespace ww {

// Bump on any change below.  TS checks it at load.
constexpr uint32_t kLayoutVersion = 6;

// ---------------------------------------------------------------------------
// Connection tokens
//
// A token names one connection for its whole life and is never confused with
// a later connection that reuses the same slot or file descriptor.  It is a
// JavaScript-safe integer (53 bits), carried as an IEEE double on the wire
// between JS and native:
//
//    52                26 25       20 19                 0
//   +--------------------+-----------+--------------------+
//   |  generation (27)   | thread (6)|      slot (20)     |
//   +--------------------+-----------+--------------------+
//
// generation starts at 1 and is bumped every time the slot is recycled; 0 is
// never a live generation.  A slot would have to be reused 2^27 times while
// JS held an old token before a stale token could alias a new connection.
// ---------------------------------------------------------------------------
constexpr uint32_t kSlotBits = 20;
constexpr uint32_t kThreadBits = 6;
constexpr uint32_t kGenBits = 27;
constexpr uint32_t kMaxSlotsPerThread = 1u << kSlotBits;
constexpr uint32_t kMaxIoThreads = 1u << kThreadBits;
constexpr uint32_t kGenMask = (1u << kGenBits) - 1;

struct TokenParts {
  uint32_t slot;
  uint32_t thread;
  uint32_t gen;
};

inline uint64_t token_encode(uint32_t thread, uint32_t slot, uint32_t gen) {
  return (uint64_t(gen & kGenMask) << (kSlotBits + kThreadBits)) |
         (uint64_t(thread) << kSlotBits) | uint64_t(slot);
}

inline TokenParts token_decode(uint64_t token) {
  TokenParts p;
  p.slot = uint32_t(token & (kMaxSlotsPerThread - 1));
  p.thread = uint32_t((token >> kSlotBits) & (kMaxIoThreads - 1));
  p.gen = uint32_t((token >> (kSlotBits + kThreadBits)) & kGenMask);
  return p;
}

inline uint32_t gen_next(uint32_t gen) {
  gen = (gen + 1) & kGenMask;
  return gen == 0 ? 1 : gen;
}

// ---------------------------------------------------------------------------
// The completion block: one shared memory block, read by JS as one
// ArrayBuffer, holding a small control area and one single-producer /
// single-consumer ring per I/O thread.
//
//   offset 0                 kControlBytes
//   +------------------------+----------------------------------------+
//   | control (64 B)         | ring 0 | ring 1 | ...  | ring N-1      |
//   +------------------------+----------------------------------------+
//
//   ring i = [ header (kRingHeaderBytes) | data (ring_bytes, power of 2) ]
//
//   header:  +0   u32 tail     written by the I/O thread (release), read by JS
//            +64  u32 head     written by JS, read by the I/O thread (acquire)
//            +68  u32 stalled  1 while the I/O thread waits for space
//   (tail and head sit on separate cache lines.)
//
// head and tail are free-running byte counters (mod 2^32).  used = tail-head.
// Empty: head == tail.  Full for a record of n bytes: ring_bytes - used < n.
// A record never wraps: when it does not fit before the end of the data
// area, the producer writes a PAD record that fills the rest, and starts the
// record at offset 0.  Every record starts on a kRecordAlign boundary, so the
// space left before the end is always 0 or at least one record header.
//
// After the last ring come the live tables, one per I/O thread, each
// kMaxSlotsPerThread u32s: live[slot] is the generation of the connection in
// that slot while it is open and 0 otherwise.  JS reads it to tell whether a
// token is still open without calling into native code.  (The pages are
// zero-filled lazily by the OS, so unused slots cost no memory.)
//
// After the live tables come the stats blocks, one per I/O thread, each
// kStatsBytes of f64 counters (enum Stat) that only that thread writes.  JS
// reads them for a snapshot at any time; each 8-byte aligned store is read
// whole on every platform whirlwind runs on.
//
// control: +0 u32 layout version, +4 u32 ring count, +8 u32 ring_bytes,
//          +12 u32 wake_pending (1 while a wake-up of JS is queued).
// ---------------------------------------------------------------------------
constexpr uint32_t kControlBytes = 64;
constexpr uint32_t kCtlVersion = 0;
constexpr uint32_t kCtlRingCount = 4;
constexpr uint32_t kCtlRingBytes = 8;
constexpr uint32_t kCtlWakePending = 12;

constexpr uint32_t kRingHeaderBytes = 128;
constexpr uint32_t kRingTail = 0;
constexpr uint32_t kRingHead = 64;
constexpr uint32_t kRingStalled = 68;

constexpr uint32_t kStatsBytes = 256;

enum Stat : uint32_t {
  kStatAccepted = 0,     // connections adopted by this thread
  kStatOpen,             // open now (a gauge)
  kStatClosedBase,       // + CloseReason - 1: connections closed for that reason (room for 10)
  kStatFramesIn = 12,    // frames handed to JS
  kStatBytesIn,          // payload bytes of those frames
  kStatSendsOut,         // send entries taken from JS
  kStatBytesOut,         // bytes written to sockets
  kStatRingStalls,       // times the ring was found full
  kStatDeferred,         // records waiting for ring space now (a gauge)
  kStatAcceptErrors,     // accept failures (EMFILE and the like)
  kStatStaleOps,         // sends/closes for connections already closed
  kStatWakeups,          // loop turns (wait() returns)
  kStatRefused,          // connections refused (maxConnections, per-address limit)
  kStatPendingBytes,     // bytes queued for sockets and not written yet (a gauge)
  kStatCount
};
static_assert(kStatCount * 8 <= 256, "stats must fit kStatsBytes");

constexpr uint32_t kMinRingBytes = 4096;
constexpr uint32_t kMaxRingBytes = 1u << 30;

// ---------------------------------------------------------------------------
// Ring records
//
//   +0  u16 kind
//   +2  u16 flags: for kRecFrame/kRecFrameLarge with protocolCheck on,
//       kRecFlagChecked | the check's code (protocol_check.h); for kRecOpen,
//       kRecFlagHeld when the connection waits for kOpAdmit; else 0
//   +4  u32 length of the payload that follows (not counting padding)
//   +8  f64 connection token (0 where none)
//   +16 payload, then zero padding to the next kRecordAlign boundary
// ---------------------------------------------------------------------------
constexpr uint16_t kRecFlagHeld = 1;
constexpr uint32_t kRecordHeaderBytes = 16;
constexpr uint32_t kRecordAlign = 16;
constexpr uint32_t kRecKind = 0;
constexpr uint32_t kRecFlags = 2;
constexpr uint32_t kRecLength = 4;
constexpr uint32_t kRecToken = 8;

enum RecordKind : uint16_t {
  kRecPad = 0,        // skip to the end of the data area
  kRecOpen = 1,       // payload: u16 port, u8 family (4|6), u8 n, n bytes address text
  kRecFrame = 2,      // payload: the frame's bytes (without the length prefix)
  kRecFrameLarge = 3, // payload: f64 large-buffer id, u32 length; JS takes it with takeLarge(id)
  kRecClose = 4,      // payload: u32 reason, i32 errno (0 if none), u32 detail
  kRecDrain = 5,      // no payload: pending send bytes fell to the low-water mark
  kRecStopped = 6,    // no payload: this I/O thread has finished a graceful close
};

constexpr uint32_t kOpenPayloadMax = 4 + 64;
constexpr uint32_t kClosePayloadBytes = 12;
constexpr uint32_t kLargePayloadBytes = 16;

// Why a connection closed (kRecClose).  Keep in sync with docs/api.md.
enum CloseReason : uint32_t {
  kClosePeer = 1,          // the peer closed its side (EOF)
  kCloseError = 2,         // a socket error (errno in the record)
  kCloseLocal = 3,         // closed by the application (immediately)
  kCloseLocalFlushed = 4,  // closed by the application after its sends were written
  kCloseFrameTooLarge = 5, // a frame length above maxFrameBytes (detail = the length)
  kCloseServerClosing = 6, // the server is closing
  kCloseOutOfMemory = 7,   // a receive buffer could not be allocated
  kCloseIdle = 8,          // nothing received or sent for idleTimeoutMs
  kCloseRefused = 9,       // refused by the application's accept hook
};

// ---------------------------------------------------------------------------
// Send batch (JS -> native), one contiguous buffer of entries:
//
//   +0  f64 token (for kOpSend/kOpClose*)
//   +8  u32 length n of the bytes that follow
//   +12 u32 op
//   +16 n bytes, then zero padding to the next kBatchAlign boundary
//
// kOpSend bytes are written to the socket as they are: JS puts the frame's
// 4-byte little-endian length prefix in front of the payload itself.
// ---------------------------------------------------------------------------
constexpr uint32_t kBatchHeaderBytes = 16;
constexpr uint32_t kBatchAlign = 8;

enum BatchOp : uint32_t {
  kOpSend = 1,
  kOpClose = 2,         // close now; unsent bytes are discarded
  kOpCloseFlushed = 3,  // close once every byte queued before it is written
  kOpPauseRecv = 4,     // stop reading this connection (TCP backpressure on it)
  kOpResumeRecv = 5,    // read it again
  kOpAdmit = 6,         // start receiving on a connection held for admission
  kOpRefuse = 7,        // write the refuse frame to a held connection and close it
  // Internal ops (never written by JS): an I/O thread's inbox shares the format.
  kOpAdopt = 100,       // token field holds a socket handle to adopt; 8 bytes: its address key
  kOpListen = 103,      // token field holds the listening socket (thread 0)
  kOpStopListen = 101,
  kOpShutdown = 102,    // graceful close: close every connection, emit kRecStopped
};

static_assert(kStatClosedBase + kCloseRefused - 1 < kStatFramesIn, "a stats counter per close reason");

inline uint32_t align_up(uint32_t n, uint32_t a) { return (n + a - 1) & ~(a - 1); }

}  // namespace ww
