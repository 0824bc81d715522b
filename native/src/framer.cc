// framer.cc - see framer.h.
#include "framer.h"

#include <cstdlib>
#include <cstring>

#include "layout.h"

namespace ww {

namespace {

inline uint32_t load_le32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}

// A new frame of len bytes begins: check the length, prepare its buffer.
bool begin_frame(Conn* c, uint32_t len, const FramerLimits& lim, FramerSink& sink) {
  if (len > lim.max_frame) {
    c->framer_broken = true;
    c->hdr_have = 0;
    sink.broken(c, kCloseFrameTooLarge, len);
    return false;
  }
  c->hdr_have = 4;
  c->frame_len = len;
  c->frame_have = 0;
  c->part = nullptr;
  c->part_cap = 0;
  if (len) {
    uint32_t first = len < lim.first_chunk ? len : (lim.first_chunk ? lim.first_chunk : 1);
    c->part = static_cast<uint8_t*>(std::malloc(first));
    if (!c->part) {
      c->framer_broken = true;
      sink.broken(c, kCloseOutOfMemory, len);
      return false;
    }
    c->part_cap = first;
  }
  return true;
}

// Hand over the collected frame.  False: no room, keep it for later.
bool finish_frame(Conn* c, const FramerLimits& lim, FramerSink& sink) {
  if (c->frame_len <= lim.inline_max) {
    if (!sink.frame(c, c->part, c->frame_len)) return false;
  } else if (!sink.large_frame(c)) {
    return false;
  }
  framer_reset(c);
  return true;
}

}  // namespace

void framer_reset(Conn* c) {
  std::free(c->part);
  c->part = nullptr;
  c->part_cap = 0;
  c->hdr_have = 0;
  c->frame_len = 0;
  c->frame_have = 0;
}

bool framer_feed(Conn* c, const uint8_t* data, uint32_t n, uint32_t* used, const FramerLimits& lim,
                 FramerSink& sink) {
  uint32_t u = *used;
  while (true) {
    if (c->framer_broken) {
      u = n;  // the stream cannot be trusted past a broken frame
      break;
    }
    if (c->hdr_have == 4 && c->frame_have == c->frame_len) {
      // A complete frame waits (possibly from an earlier attempt with no room).
      if (!finish_frame(c, lim, sink)) {
        *used = u;
        return false;
      }
      continue;
    }
    if (u >= n) break;
    if (c->hdr_have == 0 && n - u >= 4) {
      uint32_t len = load_le32(data + u);
      if (len <= lim.inline_max && len <= lim.max_frame && n - u - 4 >= len) {
        // The common case: a whole frame in this input, straight to the sink.
        if (!sink.frame(c, data + u + 4, len)) {
          *used = u;
          return false;
        }
        u += 4 + len;
        continue;
      }
      std::memcpy(c->hdr, data + u, 4);
      u += 4;
      begin_frame(c, len, lim, sink);
      continue;
    }
    if (c->hdr_have < 4) {
      while (c->hdr_have < 4 && u < n) c->hdr[c->hdr_have++] = data[u++];
      if (c->hdr_have == 4) {
        c->hdr_have = 0;
        begin_frame(c, load_le32(c->hdr), lim, sink);
      }
      continue;
    }
    // Collecting a payload; grow the buffer as bytes arrive.
    uint32_t take = c->frame_len - c->frame_have;
    if (take > n - u) take = n - u;
    uint32_t need = c->frame_have + take;
    if (need > c->part_cap) {
      uint64_t cap = uint64_t(c->part_cap) * 2;
      while (cap < need) cap *= 2;
      if (cap > c->frame_len) cap = c->frame_len;
      void* q = std::realloc(c->part, size_t(cap));
      if (!q) {
        c->framer_broken = true;
        sink.broken(c, kCloseOutOfMemory, c->frame_len);
        continue;
      }
      c->part = static_cast<uint8_t*>(q);
      c->part_cap = uint32_t(cap);
    }
    std::memcpy(c->part + c->frame_have, data + u, take);
    c->frame_have += take;
    u += take;
  }
  *used = u;
  return true;
}

}  // namespace ww
