#!/usr/bin/env node
// Writes bench/frames/echo-64.bin: one length-prefixed REQUEST frame (id 1,
// action "echo", a 64-byte binary body) for ww_loadgen's replay mode
// (--frame-file).  Every protocol echo server answers it with one REPLY frame.
//
//   npx tsc -p tsconfig.json && node bench/frames/make-echo-frame.mjs
import { writeFileSync } from 'node:fs';
import { MessageEncoder, Messages } from '../../dist/src/protocol/index.js';

const body = Buffer.alloc(64 - 2, 0x61); // bin 8 header (2 bytes) + 62 bytes = a 64-byte msgpack body
const frame = new MessageEncoder().encodePrefixed(Messages.request(1, 'echo', body));
const out = new URL('./echo-64.bin', import.meta.url);
writeFileSync(out, frame);
console.log(`wrote ${out.pathname}: ${frame.length} bytes`);
