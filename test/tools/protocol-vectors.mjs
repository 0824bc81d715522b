#!/usr/bin/env node
// Regenerates the test vectors and the annotated worked example in
// docs/protocol.md from the encoder (src/protocol/vectors.ts).
//
//   npx tsc -p tsconfig.json && node test/tools/protocol-vectors.mjs          # rewrite the doc
//   npx tsc -p tsconfig.json && node test/tools/protocol-vectors.mjs --check  # exit 1 if it differs
//
// test/protocol-doc-vectors.test.ts checks the same thing without building.

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TEST_VECTORS, encodeVector, readHeader } from '../../dist/src/protocol/index.js';
import { renderVectors, renderWorkedExample, replaceBetween } from './protocol-vectors-render.mjs';

const docPath = fileURLToPath(new URL('../../docs/protocol.md', import.meta.url));
const before = readFileSync(docPath, 'utf8');
let after = replaceBetween(before, 'vectors', renderVectors(TEST_VECTORS, encodeVector));
after = replaceBetween(after, 'worked-example', renderWorkedExample(TEST_VECTORS, encodeVector, readHeader));

if (process.argv.includes('--check')) {
  if (after !== before) {
    process.stderr.write('docs/protocol.md vectors are stale: run node test/tools/protocol-vectors.mjs\n');
    process.exit(1);
  }
  process.stdout.write('docs/protocol.md vectors are up to date\n');
} else if (after !== before) {
  writeFileSync(docPath, after);
  process.stdout.write('docs/protocol.md: vectors rewritten\n');
} else {
  process.stdout.write('docs/protocol.md: vectors already up to date\n');
}
