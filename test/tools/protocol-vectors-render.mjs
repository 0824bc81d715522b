// Rendering of the protocol test vectors as Markdown, shared by
// test/tools/protocol-vectors.mjs (which writes docs/protocol.md) and
// test/protocol-doc-vectors.test.ts (which checks it).  Pure functions: they
// take the vectors and the encoder as arguments.

/** Hex with a space between bytes and `perLine` bytes per line. */
export function hexLines(buf, perLine = 16) {
  const lines = [];
  for (let i = 0; i < buf.length; i += perLine) {
    lines.push([...buf.subarray(i, i + perLine)].map((b) => b.toString(16).padStart(2, '0')).join(' '));
  }
  return lines.join('\n');
}

/** Parses hex written by hexLines (any whitespace) back into bytes. */
export function parseHex(text) {
  const clean = text.replace(/\s+/g, '');
  if (!/^([0-9a-f]{2})*$/i.test(clean)) throw new Error(`not hex: ${text.slice(0, 40)}`);
  return Buffer.from(clean, 'hex');
}

/** The Markdown for every vector; each block is tagged `<!-- vector: name -->`. */
export function renderVectors(vectors, encodeVector) {
  const out = [];
  for (const v of vectors) {
    const bytes = encodeVector(v);
    out.push(`#### \`${v.name}\``, '');
    out.push(`${v.description} ${bytes.length} bytes including the 4-byte length prefix.` +
      (v.compressed ? ' The DEFLATE bytes are what zlib produces; another encoder may emit different, equally valid bytes (check that it decompresses to the same body instead).' : ''));
    out.push('', `<!-- vector: ${v.name} -->`, '```text', hexLines(bytes), '```', '');
  }
  return out.join('\n');
}

/** Field-by-field table of the `request-attachment-checksum` vector. */
export function renderWorkedExample(vectors, encodeVector, readHeader) {
  const v = vectors.find((x) => x.name === 'request-attachment-checksum');
  const bytes = encodeVector(v);
  const frame = bytes.subarray(4);
  const h = readHeader(frame);
  const hex = (from, to) => [...bytes.subarray(from, to)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  const rows = [
    [0, 4, 'length prefix', `u32 LE = ${frame.length}: the message that follows has ${frame.length} bytes`],
    [4, 5, 'magic', '0x57 (\'W\')'],
    [5, 6, 'version', '1'],
    [6, 7, 'kind', `${h.kind} = REQUEST`],
    [7, 8, 'flags', `0x0${h.flags} = CHECKSUM`],
    [8, 12, 'id', `u32 LE = ${h.id}`],
    [12, 14, 'code', 'u16 LE = 0 (not an ERROR/GOAWAY)'],
    [14, 15, 'actionLength', `${h.actionLength}`],
    [15, 16, 'reserved', '0'],
    [16, 20, 'bodyWireLength', `u32 LE = ${h.bodyWireLength}`],
    [20, 24, 'bodyLength', `u32 LE = ${h.bodyLength} (equal: not compressed)`],
    [24, 28, 'attachWireLength', `u32 LE = ${h.attachWireLength}`],
    [28, 32, 'attachLength', `u32 LE = ${h.attachLength}`],
    [32, 32 + h.actionLength, 'action', `UTF-8 "upload"`],
    [4 + h.bodyOffset, 4 + h.attachOffset, 'body', 'msgpack: de 00 01 = map16 with 1 entry; a4 "name" = fixstr 4; a5 "a.txt" = fixstr 5'],
    [4 + h.attachOffset, 4 + h.attachOffset + h.attachWireLength, 'attachment', 'the raw bytes "hi\\n"'],
    [bytes.length - 4, bytes.length, 'crc32', `u32 LE = 0x${frame.readUInt32LE(frame.length - 4).toString(16).padStart(8, '0')}: CRC-32 of the ${frame.length - 4} message bytes before it (not the prefix)`],
  ];
  const out = ['| bytes (offset in the stream) | hex | field | meaning |', '|---|---|---|---|'];
  for (const [from, to, field, meaning] of rows) out.push(`| ${to - 1 === from ? from : `${from}..${to - 1}`} | \`${hex(from, to)}\` | ${field} | ${meaning} |`);
  return out.join('\n') + '\n';
}

/** Replaces the text between `<!-- name:begin -->` and `<!-- name:end -->`. */
export function replaceBetween(doc, name, content) {
  const begin = `<!-- ${name}:begin -->`;
  const end = `<!-- ${name}:end -->`;
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  if (i < 0 || j < i) throw new Error(`docs/protocol.md lacks ${begin} ... ${end}`);
  return doc.slice(0, i + begin.length) + '\n' + content + doc.slice(j);
}
