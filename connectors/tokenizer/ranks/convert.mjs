// Converts js-tiktoken's rank tables (dist/ranks/<encoding>.js) into the binary files the tokenizer loads
// (connectors/tokenizer/ranks.cc reads them). Run by the build (connectors/tokenizer/CMakeLists.txt):
//
//   node convert.mjs <node_modules/js-tiktoken> <output dir>
//
// js-tiktoken stores each table as {pat_str, special_tokens, bpe_ranks}; bpe_ranks is lines of
// "<tag> <first rank> <base64 token> <base64 token> ...", ranks counting up from the first one. Before anything
// is written, the table is turned back into OpenAI's original <encoding>.tiktoken text ("<base64> <rank>\n" by
// rank) and its SHA-256 must equal the one tiktoken itself pins for that file, so the tables are exactly OpenAI's
// whatever the npm package did to them.
//
// Output <encoding>.ranks, little-endian: "SFRANKS1", u32 name length, name, u32 token count, then per token in
// rank order: u32 rank, u16 byte length, bytes.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

// tiktoken_ext/openai_public.py: expected_hash of each .tiktoken file, and the token counts they hold.
const EXPECTED = {
  cl100k_base: { sha256: '223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7', tokens: 100256 },
  o200k_base: { sha256: '446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d', tokens: 199998 },
};

function fail(message) {
  console.error(`convert.mjs: ${message}`);
  process.exit(1);
}

async function convert(packageDir, outDir, name) {
  const source = path.join(packageDir, 'dist', 'ranks', `${name}.js`);
  if (!fs.existsSync(source)) fail(`${source} is missing: is js-tiktoken installed (npm ci)?`);
  const table = (await import(pathToFileURL(source).href)).default;
  if (typeof table?.bpe_ranks !== 'string') fail(`${source}: no bpe_ranks string`);

  const tokens = [];  // [rank, Buffer]
  for (const line of table.bpe_ranks.split('\n')) {
    if (line === '') continue;
    const [, first, ...encoded] = line.split(' ');
    const offset = Number.parseInt(first, 10);
    if (!Number.isSafeInteger(offset) || offset < 0) fail(`${source}: bad rank offset ${first}`);
    encoded.forEach((b64, i) => tokens.push([offset + i, Buffer.from(b64, 'base64')]));
  }
  tokens.sort((a, b) => a[0] - b[0]);

  const expected = EXPECTED[name];
  const original = tokens.map(([rank, bytes]) => `${bytes.toString('base64')} ${rank}\n`).join('');
  const digest = crypto.createHash('sha256').update(original).digest('hex');
  if (tokens.length !== expected.tokens || digest !== expected.sha256) {
    fail(`${name}: ${tokens.length} tokens, sha256 ${digest} of the rebuilt ${name}.tiktoken; ` +
         `expected ${expected.tokens} tokens, sha256 ${expected.sha256}`);
  }

  const chunks = [Buffer.from('SFRANKS1', 'ascii')];
  const u32 = (v) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; };
  chunks.push(u32(name.length), Buffer.from(name, 'ascii'), u32(tokens.length));
  for (const [rank, bytes] of tokens) {
    const head = Buffer.alloc(6);
    head.writeUInt32LE(rank, 0);
    head.writeUInt16LE(bytes.length, 4);
    chunks.push(head, bytes);
  }
  const target = path.join(outDir, `${name}.ranks`);
  const temp = `${target}.tmp${process.pid}`;
  fs.writeFileSync(temp, Buffer.concat(chunks));
  fs.renameSync(temp, target);  // never leave a half-written table under the final name
  console.log(`convert.mjs: ${target}: ${tokens.length} tokens, source sha256 ${digest} (matches tiktoken)`);
}

const [packageDir, outDir] = process.argv.slice(2);
if (!packageDir || !outDir) fail('usage: node convert.mjs <node_modules/js-tiktoken> <output dir>');
fs.mkdirSync(outDir, { recursive: true });
for (const name of Object.keys(EXPECTED)) await convert(packageDir, outDir, name);
