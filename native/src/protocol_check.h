// protocol_check.h - the part of a whirlwind protocol message (docs/protocol.md)
// that an I/O thread can check at fixed offsets, before JavaScript sees it:
// magic, version, kind, flags, the reserved byte, the length rule, the
// DEFLATE length rules, and the CRC-32 trailer.  Kind-specific rules, limits
// and MessagePack stay with the TypeScript decoder, which remains the
// authority on what a message means; a message that passes here has had its
// CRC verified and need not be checked again.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ww {

// Codes from docs/protocol.md's error table (src/protocol/errors.ts).
enum ProtoCode : uint16_t {
  kProtoOk = 0,
  kProtoBadMessage = 1,
  kProtoBadMagic = 2,
  kProtoUnknownVersion = 3,
  kProtoUnknownKind = 4,
  kProtoBadChecksum = 6,
};

// Header offsets (docs/protocol.md section 2).
constexpr uint32_t kProtoHeaderBytes = 28;
constexpr uint8_t kProtoMagic = 0x57;
constexpr uint8_t kProtoVersion = 1;
constexpr uint8_t kProtoMaxKind = 7;
constexpr uint8_t kProtoFlagChecksum = 0x01;
constexpr uint8_t kProtoFlagBodyDeflate = 0x02;
constexpr uint8_t kProtoFlagAttachDeflate = 0x04;
constexpr uint8_t kProtoKnownFlags = 0x07;

// Ring record flags (layout.h kRecFlags) for a frame checked this way:
// bit 15 set = checked; bits 0..14 = the ProtoCode (0: passed).
constexpr uint16_t kRecFlagChecked = 0x8000;

// CRC-32/ISO-HDLC (zlib, PNG): reflected polynomial 0xEDB88320, init and
// final XOR 0xFFFFFFFF.  crc32("123456789") == 0xCBF43926.
uint32_t crc32(const uint8_t* p, size_t n);

// Check one whole frame (without its length prefix).  A zero-length frame is
// a keep-alive and passes.
ProtoCode protocol_check(const uint8_t* p, size_t n);

}  // namespace ww
