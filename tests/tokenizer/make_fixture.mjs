// Writes tests/tokenizer/fixture.inc: token ids of varied text under o200k_base and cl100k_base, computed by
// js-tiktoken (an independent implementation of the split patterns and the merge) so that tokenizer_test can
// compare statefold's C++ encoder with it. Generated once and committed; re-run only to add cases:
//
//   cmake --build <build> --target tokenizer_ranks      # installs js-tiktoken into <build>/connectors/tokenizer/ranks-npm
//   node tests/tokenizer/make_fixture.mjs <build>/connectors/tokenizer/ranks-npm/node_modules/js-tiktoken \
//       > tests/tokenizer/fixture.inc
//
// Each case is a byte string, `repeat` times. Bytes that are not UTF-8 go through TextDecoder first (each
// maximal ill-formed subsequence becomes U+FFFD), which is the behaviour the C++ tokenizer documents.
// Left out on purpose, because js-tiktoken's JavaScript regexes differ there from tiktoken's Rust ones: U+0085
// and U+FEFF (JS \s has FEFF, not 0085), "'" followed by U+017F (the Rust pattern's case-insensitive 's matches
// it); tokenizer_test covers U+0085 with tiktoken's own test vector.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node make_fixture.mjs <node_modules/js-tiktoken>');
  process.exit(1);
}
const version = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
const { Tiktoken } = await import(pathToFileURL(path.join(dir, 'dist', 'index.js')).href);
const load = async (name) =>
  new Tiktoken((await import(pathToFileURL(path.join(dir, 'dist', 'ranks', `${name}.js`)).href)).default);
const encodings = { o200k: await load('o200k_base'), cl100k: await load('cl100k_base') };

const b = (s) => Buffer.from(s, 'utf8');
const raw = (...bytes) => Buffer.from(bytes);
const cat = (...parts) => Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : b(p))));

const prose =
  'Statefold keeps every interaction as an event. The engine folds those events into session state exactly ' +
  "once; it doesn't lose them, and it won't apply one twice. We've measured it (see docs/performance.md): " +
  'about 120,000 events/s on 2 cores -- roughly 3.5x the old design.\n\nQuestions? Ask @ops or e-mail ' +
  'ops@example.com.\n';
const cpp =
  '#include <vector>\n\nint main(int argc, char** argv) {\n  std::vector<int> v{1, 2, 3};\n' +
  '  for (auto& x : v) x *= 2;  // double them\n  if (argc > 1 && argv[1][0] == \'-\') return 1;\n' +
  '  return v.size() == 3 ? 0 : 2;\n}\n';
const python =
  'def fold(state, event):\n    """Apply one event."""\n    if event["type"] == "Message":\n' +
  '        state.history.append(event)\n\treturn state\n\n\nprint(f"{fold(s, e)!r:>10}")\n';
const json = '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"temperature":0.2,"n":null}';

const cases = [
  ['empty', b('')],
  ['hello world', b('hello world')],
  ['greeting', b('Hello, world!')],
  ['pangram', b('The quick brown fox jumps over the lazy dog.')],
  ['contractions', b("I'm sure you'll see they've done it, haven't they? It's John's. We'd go.")],
  ['shouted contractions', b("DON'T SHOUT, I'LL HEAR YOU'RE THERE. IT'S FINE'S")],
  ['camel case', b('parseHTTPResponse XMLHttpRequest getURLForID iPhone McDonald')],
  ['numbers', b('1234567890 3.14159 1,000,000 -42 0x7fff 1e-9 2024-05-13T12:00:00Z')],
  ['accents', b('café résumé naïve über Ångström façade crème brûlée')],
  ['accents upper', b('Ça va? ÉLÈVE, École, ÑANDÚ, ÆØÅ æøå ß ẞ')],
  ['combining marks', b('e\u0301 a\u0300 n\u0303 cafe\u0301 Z\u0351\u0352\u0353algo')],
  ['chinese', b('请考试我的软件！12345')],
  ['japanese', b('東京都は日本の首都です。カタカナとひらがな、漢字。')],
  ['korean', b('한국어 텍스트입니다. 안녕하세요!')],
  ['cjk punctuation', b('「引用」『二重』【括弧】（全角）：；？！…')],
  ['emoji thumbs', b('👍')],
  ['emoji mixed', b('I ❤️ 🍕 and 👨‍👩‍👧‍👦 families 🏳️‍🌈 🇫🇷 👋🏽')],
  ['emoji run', b('😀😃😄😁😆😅😂🤣')],
  ['russian', b('Привет, мир! Как дела? ПРИВЕТ')],
  ['greek', b('Γειά σου Κόσμε — ΑΒΓΔ αβγδ')],
  ['arabic', b('مرحبا بالعالم، كيف حالك؟')],
  ['hebrew', b('שלום עולם')],
  ['hindi', b('नमस्ते दुनिया, आप कैसे हैं?')],
  ['thai', b('สวัสดีชาวโลก')],
  ['mixed scripts', b('GPT-4o says 你好, Привет & مرحبا in one line; ok?')],
  ['special tokens as text', b('<|endoftext|> hello <|fim_prefix|> there <|fim_middle|><|endofprompt|>')],
  ['url', b('https://example.com/a/b/c?query=1&b=two#frag')],
  ['paths and slashes', b('src/engine/fold.cc // comment\n/* block */\na/b\r\n/\n//\n')],
  ['punctuation runs', b('!!!???...---___***$$$ ### @@@ ~~~ ||| ```')],
  ['cpp', b(cpp)],
  ['python', b(python)],
  ['json', b(json)],
  ['prose', b(prose)],
  ['spaces between words', b('a  b   c    d     e      f')],
  ['tabs', b('\t\t\tindented\tand\t\ttabbed')],
  ['newlines', b('line1\n\nline2\r\n\r\n  line3\n')],
  ['leading spaces', b('   leading')],
  ['trailing spaces', b('trailing   ')],
  ['trailing spaces newline', b('trailing spaces   \n')],
  ['today newline space', b('today\n ')],
  ['today newline space newline', b('today\n \n')],
  ['today newline spaces newline', b('today\n  \n')],
  ['only newlines', b('\n\n\n\n')],
  ['spaces and newlines', b(' \n \n  \n   ')],
  ['unicode spaces', b('a\u00a0b\u2003c\u3000d\u2009e\u202fz \u00a0 x')],
  ['line separators', b('one\u2028two\u2029three\u000bfour\u000cfive')],
  ['rer', b('rer')],
  ["'rer", b("'rer")],
  ['apostrophes', b("'s 's 'S 'll 'LL 'Re ''' ' s")],
  ['letters digits mixed', b('abc123def4567ghi89012 x1y2z3')],
  ['long word', b('pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism')],
  ['invalid lone ff', raw(0xff)],
  ['invalid inside ascii', cat('abc', raw(0xff), 'def')],
  ['invalid continuation bytes', cat('a', raw(0x80, 0x80), 'b')],
  ['invalid truncated cjk', cat('中', raw(0xe4, 0xbd))],
  ['invalid overlong slash', cat('x', raw(0xc0, 0xaf), 'y')],
  ['invalid surrogate', cat('x', raw(0xed, 0xa0, 0x80), 'y')],
  ['invalid above max', cat(raw(0xf4, 0x90, 0x80, 0x80), ' z')],
  ['invalid truncated emoji at end', cat('ok ', raw(0xf0, 0x9f, 0x91))],
  ['invalid mixed', cat(raw(0xe2, 0x82), 'A', raw(0xc3), ' ', raw(0xf8, 0x88, 0x80, 0x80, 0x80))],
];
const repeated = [
  ['repeat a', 'a', 1000],
  ['repeat A', 'A', 300],
  ['repeat space', ' ', 500],
  ['repeat newline', '\n', 200],
  ['repeat zero', '0', 100],
  ['repeat caret', '^', 300],
  ["repeat 's", "'s", 100],
  ['repeat cjk', '中', 300],
  ['repeat emoji', '🙂', 100],
  ['repeat prose', prose, 8],
];

function literal(bytes) {
  let s = '"';
  for (const x of bytes) {
    if (x === 0x22) s += '\\"';
    else if (x === 0x5c) s += '\\\\';
    else if (x === 0x0a) s += '\\n';
    else if (x === 0x09) s += '\\t';
    else if (x === 0x0d) s += '\\r';
    else if (x === 0x3f) s += '\\?';  // no trigraphs
    else if (x >= 0x20 && x < 0x7f) s += String.fromCharCode(x);
    else s += '\\' + x.toString(8).padStart(3, '0');
  }
  return s + '"';
}

function ids(bytes, repeat) {
  const text = new TextDecoder('utf-8').decode(Buffer.concat(Array(repeat).fill(bytes)));
  // Special tokens are ordinary text (tiktoken's encode_ordinary): none allowed, none disallowed.
  const out = {};
  for (const [name, enc] of Object.entries(encodings)) out[name] = enc.encode(text, [], []);
  return out;
}

function wrap(list) {
  const lines = [];
  for (let i = 0; i < list.length; i += 14) lines.push('      ' + list.slice(i, i + 14).join(', ') + ',');
  return lines.join('\n');
}

let out =
  '// GENERATED by tests/tokenizer/make_fixture.mjs from js-tiktoken ' + version + ' (see that file for the\n' +
  '// command). Do not edit: re-run it. Each entry: name, bytes, repeat, o200k_base ids, cl100k_base ids.\n';
const all = cases.map(([name, bytes]) => [name, bytes, 1]).concat(repeated.map(([n, u, r]) => [n, b(u), r]));
for (const [name, bytes, repeat] of all) {
  const r = ids(bytes, repeat);
  out += `{${JSON.stringify(name)}, ${literal(bytes)}, ${repeat},\n` +
         `  {\n${wrap(r.o200k)}\n  },\n  {\n${wrap(r.cl100k)}\n  }},\n`;
}
process.stdout.write(out);
