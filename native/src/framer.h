// framer.h - turns a connection's byte stream into whole frames.
//
// A frame is a u32 little-endian length L and L bytes.  The framer keeps its
// state in the Conn (hdr, frame_len, frame_have, part), so it can stop at any
// frame boundary when the sink has no room and pick up again later with the
// same bytes, and it holds no memory for a connection between frames.
//
//   - a whole frame of at most inline_max bytes inside the input goes to
//     sink.frame() straight from the input (no copy here);
//   - a frame split across inputs collects in c->part, which grows as bytes
//     arrive (announcing a large frame costs nothing until it is sent);
//   - a collected frame goes to sink.frame() when it is at most inline_max,
//     else to sink.large_frame(), which takes c->part;
//   - a length above max_frame, or memory that cannot be had, marks the
//     stream broken: sink.broken() is told once and every later byte of the
//     connection is discarded.
// Kept free of threads and sockets so a fuzzer can drive it (native/fuzz/).
#pragma once

#include <cstdint>

#include "conn.h"

namespace ww {

class FramerSink {
 public:
  virtual ~FramerSink() = default;
  // A whole frame; false when there is no room now (the framer stops there).
  virtual bool frame(Conn* c, const uint8_t* p, uint32_t n) = 0;
  // c->part holds a whole frame of c->frame_len bytes, too large to go
  // inline.  On true the sink has taken c->part (and set it to nullptr).
  virtual bool large_frame(Conn* c) = 0;
  // The stream is broken (reason: kCloseFrameTooLarge or kCloseOutOfMemory).
  virtual void broken(Conn* c, uint32_t reason, uint32_t detail) = 0;
};

struct FramerLimits {
  uint32_t max_frame;   // largest accepted length
  uint32_t inline_max;  // largest frame handed over through frame()
  uint32_t first_chunk = 64u << 10;  // first allocation for a split frame; it doubles from there
};

// Consume data[*used, n).  Returns true when everything was consumed, false
// when the sink had no room (*used says how far it got; call again with the
// same bytes later).
bool framer_feed(Conn* c, const uint8_t* data, uint32_t n, uint32_t* used, const FramerLimits& lim,
                 FramerSink& sink);

// Forget any frame in progress and free its memory.
void framer_reset(Conn* c);

}  // namespace ww
