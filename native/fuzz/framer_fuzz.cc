// framer_fuzz.cc - libFuzzer target for the framer (framer.h) and the
// protocol check (protocol_check.h).
//
// The input's first 4 bytes choose the limits and the seed for how the
// stream is split into reads and when the sink reports "no room"; the rest is
// the byte stream of one connection.  A plain reference parser says which
// frames the stream holds; the framer, fed in pieces with stalls and retries
// exactly as the engine feeds it, must deliver exactly those frames, in order,
// and mark the stream broken exactly when the reference finds a length over
// the limit.  Any difference traps.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../src/framer.h"
#include "../src/layout.h"
#include "../src/protocol_check.h"

namespace {

using ww::Conn;

struct Rng {
  uint32_t s;
  uint32_t next() {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
  }
};

struct Sink : ww::FramerSink {
  std::vector<std::vector<uint8_t>> frames;
  Rng rng{1};
  uint32_t refusals = 0;
  bool broken_seen = false;
  uint32_t broken_reason = 0;

  bool room() {
    // Refuse now and then (a full ring), never more than 3 times running.
    if (refusals < 3 && (rng.next() & 7) == 0) {
      ++refusals;
      return false;
    }
    refusals = 0;
    return true;
  }
  bool frame(Conn*, const uint8_t* p, uint32_t n) override {
    if (!room()) return false;
    frames.emplace_back(p, p + n);
    ww::protocol_check(p, n);  // must not crash on anything
    return true;
  }
  bool large_frame(Conn* c) override {
    if (!room()) return false;
    frames.emplace_back(c->part, c->part + c->frame_len);
    ww::protocol_check(c->part, c->frame_len);
    std::free(c->part);
    c->part = nullptr;
    return true;
  }
  void broken(Conn*, uint32_t reason, uint32_t) override {
    if (broken_seen) __builtin_trap();  // told once
    broken_seen = true;
    broken_reason = reason;
  }
};

uint32_t le32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}

uint32_t crc32_bitwise(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
  }
  return c ^ 0xFFFFFFFFu;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  const uint32_t max_frame = 1 + (data[0] % 64) * 37;        // 1 .. 2332
  const uint32_t inline_max = data[1] % 128;                  // 0 .. 127
  Rng split{uint32_t(data[2]) * 2654435761u + 7};
  const uint8_t* s = data + 4;
  const uint32_t n = uint32_t(size - 4);

  // Reference: the frames the stream holds, and whether it breaks.
  std::vector<std::vector<uint8_t>> want;
  bool want_broken = false;
  for (uint32_t off = 0; n - off >= 4;) {
    uint32_t len = le32(s + off);
    if (len > max_frame) {
      want_broken = true;
      break;
    }
    if (n - off - 4 < len) break;  // incomplete: stays pending
    want.emplace_back(s + off + 4, s + off + 4 + len);
    off += 4 + len;
  }

  Conn c;
  Sink sink;
  sink.rng.s = uint32_t(data[3]) * 40503u + 1;
  // A small first chunk so the buffer-growth path runs on fuzz-sized frames.
  ww::FramerLimits lim{max_frame, inline_max, 1u + (data[3] % 32)};
  for (uint32_t off = 0; off < n;) {
    uint32_t chunk = 1 + split.next() % 300;
    if (chunk > n - off) chunk = n - off;
    uint32_t used = 0;
    int guard = 0;
    while (!ww::framer_feed(&c, s + off, chunk, &used, lim, sink)) {
      if (++guard > 100000) __builtin_trap();  // no progress: a livelock
    }
    if (used != chunk) __builtin_trap();
    off += chunk;
  }
  if (sink.broken_seen != want_broken) __builtin_trap();
  if (want_broken && sink.broken_reason != ww::kCloseFrameTooLarge) __builtin_trap();
  if (sink.frames != want) __builtin_trap();
  ww::framer_reset(&c);

  // The table-driven CRC agrees with the bitwise definition.
  if (n <= 512 && ww::crc32(s, n) != crc32_bitwise(s, n)) __builtin_trap();
  return 0;
}
