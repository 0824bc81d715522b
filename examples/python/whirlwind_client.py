#!/usr/bin/env python3
"""A whirlwind protocol client written from docs/protocol.md alone.

Standard library only (socket, struct, zlib), with a small MessagePack codec
for the types the protocol uses, to show that a stranger can talk to a
whirlwind server without any whirlwind code.  test/protocol-foreign-client.test.ts
runs it against the reference server and against the document's test vectors.

    python3 whirlwind_client.py demo HOST PORT      # talk to a server, print JSON lines
    python3 whirlwind_client.py vectors DOC.md      # decode the doc's test vectors
"""
import json
import re
import socket
import struct
import sys
import zlib

MAGIC, VERSION, HEADER = 0x57, 1, 28
REQUEST, REPLY, ERROR, PUSH, PING, PONG, GOAWAY = range(1, 8)
CHECKSUM, BODY_DEFLATE, ATTACHMENT_DEFLATE = 0x01, 0x02, 0x04

# --- MessagePack (big-endian inside, per its spec) -------------------------


def mp_pack(v):
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 0x80:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack(">b", v)
        if 0 <= v < 2**32:
            return b"\xce" + struct.pack(">I", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        if len(b) < 32:
            return bytes([0xA0 | len(b)]) + b
        return b"\xdb" + struct.pack(">I", len(b)) + b
    if isinstance(v, (bytes, bytearray)):
        return b"\xc6" + struct.pack(">I", len(v)) + bytes(v)
    if isinstance(v, (list, tuple)):
        return b"\xdd" + struct.pack(">I", len(v)) + b"".join(mp_pack(x) for x in v)
    if isinstance(v, dict):
        return b"\xdf" + struct.pack(">I", len(v)) + b"".join(mp_pack(k) + mp_pack(x) for k, x in v.items())
    raise TypeError(type(v))


def mp_unpack(b):
    v, end = _read(b, 0)
    if end != len(b):
        raise ValueError("trailing bytes in body")
    return v


def _read(b, p):
    t = b[p]
    p += 1
    if t < 0x80:
        return t, p
    if t >= 0xE0:
        return t - 0x100, p
    if t < 0x90:
        return _map(b, p, t & 0x0F)
    if t < 0xA0:
        return _arr(b, p, t & 0x0F)
    if t < 0xC0:
        n = t & 0x1F
        return b[p:p + n].decode(), p + n
    fixed = {0xC0: None, 0xC2: False, 0xC3: True}
    if t in fixed:
        return fixed[t], p
    nums = {0xCA: ">f", 0xCB: ">d", 0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
            0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
    if t in nums:
        f = nums[t]
        n = struct.calcsize(f)
        return struct.unpack_from(f, b, p)[0], p + n
    lens = {0xC4: ">B", 0xC5: ">H", 0xC6: ">I", 0xD9: ">B", 0xDA: ">H", 0xDB: ">I",
            0xDC: ">H", 0xDD: ">I", 0xDE: ">H", 0xDF: ">I"}
    if t in lens:
        f = lens[t]
        n = struct.unpack_from(f, b, p)[0]
        p += struct.calcsize(f)
        if t in (0xC4, 0xC5, 0xC6):
            return bytes(b[p:p + n]), p + n
        if t in (0xD9, 0xDA, 0xDB):
            return b[p:p + n].decode(), p + n
        return (_arr if t in (0xDC, 0xDD) else _map)(b, p, n)
    if t in (0xD6, 0xD7, 0xC7):  # timestamp (-1) only
        n = {0xD6: 4, 0xD7: 8}.get(t)
        if n is None:
            n = b[p]
            p += 1
        if b[p] != 0xFF:
            raise ValueError("extension type not allowed")
        p += 1
        return {"timestamp": bytes(b[p:p + n]).hex()}, p + n
    raise ValueError("format byte 0x%02x not allowed" % t)


def _arr(b, p, n):
    out = []
    for _ in range(n):
        v, p = _read(b, p)
        out.append(v)
    return out, p


def _map(b, p, n):
    out = {}
    for _ in range(n):
        k, p = _read(b, p)
        v, p = _read(b, p)
        out[k] = v
    return out, p


# --- messages ---------------------------------------------------------------


def encode(kind, id=0, action="", body=None, has_body=True, attachment=b"", code=0, checksum=False, compress=False):
    """Returns the frame including its 4-byte little-endian length prefix."""
    a = action.encode()
    raw_body = mp_pack(body) if has_body else b""
    flags = CHECKSUM if checksum else 0
    wire_body, wire_att = raw_body, attachment
    if compress and raw_body:
        c = zlib.compressobj(1, zlib.DEFLATED, -15)  # raw DEFLATE
        wire_body = c.compress(raw_body) + c.flush()
        flags |= BODY_DEFLATE
    header = struct.pack("<BBBBIHBBIIII", MAGIC, VERSION, kind, flags, id, code, len(a), 0,
                         len(wire_body), len(raw_body), len(wire_att), len(attachment))
    msg = header + a + wire_body + wire_att
    if checksum:
        msg += struct.pack("<I", zlib.crc32(msg))
    return struct.pack("<I", len(msg)) + msg


def decode(msg):
    """Decodes one message (without prefix) into a dict; raises ValueError on any violation."""
    if len(msg) < HEADER or msg[0] != MAGIC or msg[1] != VERSION:
        raise ValueError("bad header")
    magic, ver, kind, flags, id, code, n, rsvd, bw, bl, aw, al = struct.unpack_from("<BBBBIHBBIIII", msg, 0)
    if HEADER + n + bw + aw + (4 if flags & CHECKSUM else 0) != len(msg):
        raise ValueError("length rule")
    if flags & CHECKSUM and zlib.crc32(msg[:-4]) != struct.unpack_from("<I", msg, len(msg) - 4)[0]:
        raise ValueError("bad checksum")
    p = HEADER
    action = msg[p:p + n].decode()
    p += n
    body_bytes = msg[p:p + bw]
    p += bw
    att = msg[p:p + aw]
    if flags & BODY_DEFLATE:
        d = zlib.decompressobj(-15)
        body_bytes = d.decompress(body_bytes, bl)
        if len(body_bytes) != bl or d.unconsumed_tail:
            raise ValueError("body inflates to the wrong size")
    if flags & ATTACHMENT_DEFLATE:
        d = zlib.decompressobj(-15)
        att = d.decompress(att, al)
    out = {"kind": kind, "id": id, "code": code, "action": action, "attachment": att.hex()}
    if bl:
        out["body"] = mp_unpack(body_bytes)
    return out


class Client:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.buf = b""
        self.next_id = 1

    def send(self, frame):
        self.sock.sendall(frame)

    def read(self):
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack_from("<I", self.buf, 0)
                if len(self.buf) >= 4 + n:
                    msg, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    if n == 0:
                        continue  # keep-alive
                    return decode(msg)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("server closed")
            self.buf += chunk

    def request(self, action, body=None, **kw):
        id = self.next_id
        self.next_id += 1
        self.send(encode(REQUEST, id, action, body, **kw))
        return id


def demo(host, port):
    c = Client(host, port)
    out = []
    c.request("echo", {"hello": "world", "n": [1, -2, 3.5, None, True]}, checksum=True, attachment=b"hi\n")
    out.append(c.read())
    c.request("echo", {"text": "ab" * 500}, compress=True)
    out.append(c.read())
    c.request("nope", has_body=False)
    out.append(c.read())
    c.request("push", {"count": 3})
    out.extend(c.read() for _ in range(4))  # the reply, then the pushes
    c.send(encode(PING, 42, has_body=False))
    out.append(c.read())
    bad = bytearray(encode(REQUEST, 99, "echo", 1, checksum=True))
    bad[-5] ^= 0xFF  # damage the body: the CRC no longer matches
    c.send(bytes(bad))
    out.append(c.read())
    c.send(encode(GOAWAY, 0, "", {"message": "bye"}, code=0))
    for m in out:
        print(json.dumps(m))


def vectors(path):
    doc = open(path, encoding="utf-8").read()
    for name, hexbytes in re.findall(r"<!-- vector: (\S+) -->\s*```text\n(.*?)```", doc, re.S):
        frame = bytes.fromhex("".join(hexbytes.split()))
        (n,) = struct.unpack_from("<I", frame, 0)
        assert n == len(frame) - 4, name
        m = decode(frame[4:])
        m["name"] = name
        print(json.dumps(m))


if __name__ == "__main__":
    if sys.argv[1] == "demo":
        demo(sys.argv[2], int(sys.argv[3]))
    else:
        vectors(sys.argv[2])
