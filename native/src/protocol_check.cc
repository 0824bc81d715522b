// protocol_check.cc - see protocol_check.h.
#include "protocol_check.h"

#include <cstring>

namespace ww {

namespace {

// Slicing-by-8 tables, built once at load (8 KiB).
struct Crc32Tables {
  uint32_t t[8][256];
  Crc32Tables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i) {
      for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
    }
  }
};

const Crc32Tables& tables() {
  static const Crc32Tables tb;
  return tb;
}

inline uint32_t le32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}

}  // namespace

uint32_t crc32(const uint8_t* p, size_t n) {
  const Crc32Tables& tb = tables();
  uint32_t c = 0xFFFFFFFFu;
  while (n >= 8) {
    uint32_t a = le32(p) ^ c;
    uint32_t b = le32(p + 4);
    c = tb.t[7][a & 0xff] ^ tb.t[6][(a >> 8) & 0xff] ^ tb.t[5][(a >> 16) & 0xff] ^ tb.t[4][a >> 24] ^
        tb.t[3][b & 0xff] ^ tb.t[2][(b >> 8) & 0xff] ^ tb.t[1][(b >> 16) & 0xff] ^ tb.t[0][b >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ tb.t[0][(c ^ *p++) & 0xff];
  return c ^ 0xFFFFFFFFu;
}

ProtoCode protocol_check(const uint8_t* p, size_t n) {
  if (n == 0) return kProtoOk;  // keep-alive
  if (p[0] != kProtoMagic) return kProtoBadMagic;
  if (n > 1 && p[1] != kProtoVersion) return kProtoUnknownVersion;
  if (n < kProtoHeaderBytes) return kProtoBadMessage;
  const uint8_t kind = p[2];
  const uint8_t flags = p[3];
  if (kind == 0 || kind > kProtoMaxKind) return kProtoUnknownKind;
  if (flags & ~kProtoKnownFlags) return kProtoBadMessage;
  if (p[11] != 0) return kProtoBadMessage;
  const uint64_t action = p[10];
  const uint64_t bw = le32(p + 12), bl = le32(p + 16), aw = le32(p + 20), al = le32(p + 24);
  const bool checksum = flags & kProtoFlagChecksum;
  if (kProtoHeaderBytes + action + bw + aw + (checksum ? 4 : 0) != n) return kProtoBadMessage;
  // The CRC before the finer rules, as docs/protocol.md orders them: a
  // damaged field is reported as damage, not as the rule it happens to break.
  if (checksum && crc32(p, n - 4) != le32(p + n - 4)) return kProtoBadChecksum;
  if (flags & kProtoFlagBodyDeflate) {
    if (bw == 0 || bl == 0) return kProtoBadMessage;
  } else if (bw != bl) {
    return kProtoBadMessage;
  }
  if (flags & kProtoFlagAttachDeflate) {
    if (aw == 0 || al == 0) return kProtoBadMessage;
  } else if (aw != al) {
    return kProtoBadMessage;
  }
  return kProtoOk;
}

}  // namespace ww
