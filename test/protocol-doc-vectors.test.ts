// docs/protocol.md carries generated test vectors and a worked example;
// these tests fail when the document and the encoder disagree, and check the
// documented defaults against the code's frozen defaults objects.
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { CLIENT_DEFAULTS } from '../src/client/index.js';
import {
  CODEC_DEFAULTS,
  ErrorCode,
  MessageDecoder,
  TEST_VECTORS,
  encodeVector,
  readHeader,
} from '../src/protocol/index.js';
// @ts-expect-error - plain ESM helper shared with test/tools/protocol-vectors.mjs
import { parseHex, renderVectors, renderWorkedExample } from './tools/protocol-vectors-render.mjs';

const protocolDoc = readFileSync(new URL('../docs/protocol.md', import.meta.url), 'utf8');
const clientDoc = readFileSync(new URL('../docs/api.md', import.meta.url), 'utf8');

function docVectors(): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const m of protocolDoc.matchAll(/<!-- vector: (\S+) -->\s*```text\n([\s\S]*?)```/g)) out.set(m[1]!, parseHex(m[2]!));
  return out;
}

function between(doc: string, name: string): string {
  const begin = `<!-- ${name}:begin -->\n`;
  return doc.slice(doc.indexOf(begin) + begin.length, doc.indexOf(`<!-- ${name}:end -->`));
}

describe('docs/protocol.md test vectors', () => {
  const vectors = docVectors();

  test('the document holds one block per vector', () => {
    expect([...vectors.keys()]).toEqual(TEST_VECTORS.map((v) => v.name));
  });

  for (const v of TEST_VECTORS) {
    test(`vector ${v.name}: the document's bytes decode to the message and match the encoder`, () => {
      const bytes = vectors.get(v.name)!;
      expect(bytes.readUInt32LE(0)).toBe(bytes.length - 4);
      const m = new MessageDecoder().decode(bytes.subarray(4));
      expect(m.kind).toBe(v.message.kind);
      expect(m.id).toBe(v.message.id ?? 0);
      expect(m.action).toBe(v.message.action ?? '');
      expect(m.code).toBe(v.message.code ?? 0);
      expect(m.body).toEqual(v.message.body);
      expect(m.attachment.equals(Buffer.from(v.message.attachment ?? []))).toBe(true);
      // Exact bytes: DEFLATE output may differ between zlib builds, the rest may not.
      if (!v.compressed) expect(bytes.toString('hex')).toBe(encodeVector(v).toString('hex'));
    });
  }

  test('the vector section and the worked example are exactly what the generator script writes', () => {
    expect(between(protocolDoc, 'vectors')).toBe(renderVectors(TEST_VECTORS, encodeVector));
    expect(between(protocolDoc, 'worked-example')).toBe(renderWorkedExample(TEST_VECTORS, encodeVector, readHeader));
  });
});

describe('documented numbers match the code', () => {
  test('every codec default appears in docs/protocol.md with its value', () => {
    for (const [name, value] of Object.entries(CODEC_DEFAULTS)) {
      expect(protocolDoc, name).toMatch(new RegExp(`\\| \`${name}\` \\| \`${String(value)}\``));
    }
  });

  test('every client default appears in docs/api.md with its value', () => {
    for (const [key, value] of Object.entries(CLIENT_DEFAULTS)) {
      const name = key.startsWith('reconnect') && key !== 'reconnect' ? `reconnect.${key[9]!.toLowerCase()}${key.slice(10)}` : key;
      const shown = typeof value === 'string' ? `'${value}'` : String(value);
      expect(clientDoc, name).toMatch(new RegExp(`\\| \`${name.replace('.', '\\.')}\` \\| [^\\n]*? \\| \`${shown.replace('.', '\\.')}\` \\|`));
    }
  });

  test('every error code is in the table of docs/protocol.md with its number', () => {
    for (const [name, code] of Object.entries(ErrorCode)) {
      expect(protocolDoc, name).toMatch(new RegExp(`\\| ${code} \\| \`${name}\` \\|`));
    }
  });
});
