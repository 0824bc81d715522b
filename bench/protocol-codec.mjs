#!/usr/bin/env node
// Codec throughput: whirlwind encode/decode of typical messages beside the
// rivals in the same run (bare msgpackr pack/unpack, JSON), so the cost of
// the header, the strict msgpack scan and the CRC is visible.
//
//   npm run bench:codec        (builds the TypeScript first; part of npm run bench:micro)

import os from 'node:os';
import { Bench } from 'tinybench';
import { Packr, Unpackr } from 'msgpackr';
import { MessageDecoder, MessageEncoder, Messages } from '../dist/src/protocol/index.js';

const encoder = new MessageEncoder();
const decoder = new MessageDecoder({ copyBuffers: false });
const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false });

const small = { id: 12345, name: 'ada lovelace', tags: ['a', 'b', 'c'], active: true, score: 98.5 };
const medium = { rows: Array.from({ length: 100 }, (_, i) => ({ i, name: `row ${i}`, value: i * 1.5, ok: i % 2 === 0 })) };
const attachment = Buffer.alloc(64 * 1024, 7);

const frames = {
  small: encoder.encode(Messages.request(1, 'users.get', small)),
  smallCrc: encoder.encode(Messages.request(1, 'users.get', small, { checksum: true })),
  medium: encoder.encode(Messages.reply(1, medium)),
  attach: encoder.encode(Messages.reply(1, small, { attachment, checksum: true })),
};
const packed = { small: packr.pack(small), medium: packr.pack(medium) };
const json = { small: JSON.stringify(small), medium: JSON.stringify(medium) };
const batch = Buffer.allocUnsafe(1 << 20);

const bench = new Bench({ time: 500 });
bench
  .add('encodeInto small request (batch)', () => encoder.encodeInto(Messages.request(1, 'users.get', small), batch, 0, true))
  .add('encode small request', () => encoder.encode(Messages.request(1, 'users.get', small)))
  .add('rival: msgpackr pack small', () => packr.pack(small))
  .add('rival: JSON.stringify small', () => JSON.stringify(small))
  .add('decode small request', () => decoder.decode(frames.small))
  .add('decode small request + CRC', () => decoder.decode(frames.smallCrc))
  .add('rival: msgpackr unpack small', () => unpackr.unpack(packed.small))
  .add('rival: JSON.parse small', () => JSON.parse(json.small))
  .add('decode medium reply (100 rows)', () => decoder.decode(frames.medium))
  .add('rival: msgpackr unpack medium', () => unpackr.unpack(packed.medium))
  .add('rival: JSON.parse medium', () => JSON.parse(json.medium))
  .add('decode reply + 64 KiB attachment + CRC', () => decoder.decode(frames.attach));
await bench.run();
console.log(`${new Date().toISOString()}  node ${process.version}  ${os.type()} ${os.release()}  ${os.cpus()[0]?.model ?? ''} x${os.cpus().length}`);
console.table(bench.table());
