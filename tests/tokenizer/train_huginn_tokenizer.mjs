// Builds tests/tokenizer/huginn_tokenizer.json: a small byte-level BPE tokenizer in Huginn's format
// (Split on huginn_split_regex.txt with behavior Removed + invert, then ByteLevel without its own
// regex; ByteLevel decoder) with merges trained here on deterministic text, and Huginn's 32
// special tokens at ids 65504..65535. Regular ids: 0..255 are the bytes, then one id per merge.
// Run once by hand (the output is committed); it uses the pre-tokenizer of the oracle library:
//
//   tests/tokenizer/make_oracle.sh /tmp/oracle   # installs node_modules there
//   node tests/tokenizer/train_huginn_tokenizer.mjs /tmp/oracle [MERGES]
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { makeCorpus } from './corpus.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(path.resolve(process.argv[2] ?? '.'), 'package.json'));
const oracleModule = await import(require.resolve('@huggingface/tokenizers'));
const Tokenizer = oracleModule.Tokenizer ?? oracleModule.default.Tokenizer;
const mergeCount = Number(process.argv[3] ?? 3000);

const FIRST_SPECIAL_ID = 65504;
const NAMED_SPECIALS = ['<|begin_text|>', '<|end_text|>', '<|begin_header|>', '<|end_header|>',
  '<|end_turn|>', '<|pad|>'];

// GPT-2's byte -> printable character table (the ByteLevel alphabet).
function byteLevelAlphabet() {
  const printable = [];
  for (let b = 0x21; b <= 0x7e; ++b) printable.push(b);
  for (let b = 0xa1; b <= 0xac; ++b) printable.push(b);
  for (let b = 0xae; b <= 0xff; ++b) printable.push(b);
  const alphabet = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; ++b) {
    alphabet[b] = String.fromCharCode(printable.includes(b) ? b : next++);
  }
  return alphabet;
}

function skeleton(vocab, merges) {
  const specials = [];
  for (let i = 0; i < 32; ++i) {
    specials.push({
      id: FIRST_SPECIAL_ID + i,
      content: NAMED_SPECIALS[i] ?? `<|reserved_${i - NAMED_SPECIALS.length}|>`,
      single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    });
  }
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false };
  return {
    version: '1.0', truncation: null, padding: null, added_tokens: specials, normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        {
          type: 'Split',
          pattern: { Regex: fs.readFileSync(path.join(here, 'huginn_split_regex.txt'), 'utf8').trimEnd() },
          behavior: 'Removed', invert: true,
        },
        byteLevel,
      ],
    },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<|begin_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<|begin_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<|begin_text|>': { id: '<|begin_text|>', ids: [FIRST_SPECIAL_ID], tokens: ['<|begin_text|>'] } },
    },
    decoder: byteLevel,
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
      end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false,
      vocab, merges,
    },
  };
}

const alphabet = byteLevelAlphabet();
const vocab = {};
alphabet.forEach((symbol, byte) => { vocab[symbol] = byte; });
const preTokenizer = new Tokenizer(skeleton(vocab, []), {});

// Training text: two corpora with other seeds than the test corpus, plus the repository README.
const readme = fs.readFileSync(path.join(here, '..', '..', 'README.md'), 'utf8');
const texts = [...makeCorpus(1), ...makeCorpus(2), ...readme.split('\n\n')];
const wordCounts = new Map();
for (const text of texts) {
  for (const word of preTokenizer.pre_tokenizer(text)) wordCounts.set(word, (wordCounts.get(word) ?? 0) + 1);
}
const words = [...wordCounts].map(([word, count]) => ({ symbols: Array.from(word), count }));

const merges = [];
for (let m = 0; m < mergeCount; ++m) {
  const pairCounts = new Map();
  for (const { symbols, count } of words) {
    for (let i = 0; i + 1 < symbols.length; ++i) {
      const key = `${symbols[i]} ${symbols[i + 1]}`;
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + count);
    }
  }
  let best = null;
  let bestCount = 1;
  for (const [key, count] of pairCounts) {
    if (count > bestCount || (count === bestCount && best !== null && key < best)) { best = key; bestCount = count; }
  }
  if (best === null) break;
  const [left, right] = best.split(' ');
  merges.push([left, right]);
  if (!(left + right in vocab)) vocab[left + right] = Object.keys(vocab).length;
  for (const word of words) {
    const merged = [];
    for (let i = 0; i < word.symbols.length; ++i) {
      if (i + 1 < word.symbols.length && word.symbols[i] === left && word.symbols[i + 1] === right) {
        merged.push(left + right);
        ++i;
      } else {
        merged.push(word.symbols[i]);
      }
    }
    word.symbols = merged;
  }
}

const output = path.join(here, 'huginn_tokenizer.json');
fs.writeFileSync(output, `${JSON.stringify(skeleton(vocab, merges))}\n`);
console.log(`train_huginn_tokenizer: ${merges.length} merges, ${Object.keys(vocab).length} regular tokens -> ${output}`);
