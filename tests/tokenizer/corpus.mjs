// Deterministic test corpus for the tokenizer oracle tests: makeCorpus(seed) returns the same
// list of varied strings on every machine (several scripts, code, LaTeX, numbers, dates, runs of
// whitespace, emoji with ZWJ sequences, special tokens inside text, very long words). Only
// characters assigned by Unicode 14 are used, so that PCRE2 10.42 and the JS engine agree on them.

// mulberry32: a small seeded PRNG, so that the corpus does not depend on Math.random.
function makeRandom(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = {
  english: ('the quick brown fox jumps over lazy dog and then it runs away into forest where ' +
    'many other animals live together in peace while humans build cities roads bridges ' +
    'model language token recurrent depth layer attention weight training data compute ' +
    'I you we they she he it is are was were be been having do does did done will would ' +
    "can't won't don't isn't I'm you're we've they'll she'd it's DON'T WE'LL He's O'Neil " +
    'rock’n’roll children’s Internationalization egg eggs 3 notation theorem proof lemma')
    .split(' '),
  french: 'été déjà où naïve façon cœur garçon élève Noël à ça très bientôt hôtel français'.split(' '),
  german: 'Straße Größe über Mädchen schön Fußgängerübergänge Äpfel Öl Übung'.split(' '),
  russian: 'привет мир как дела язык модель токен слово быстрый Москва Ёлка съесть'.split(' '),
  greek: 'γειά σου κόσμε καλημέρα λόγος ἀρχή Ἀθῆναι φιλοσοφία ΑΒΓΔ ωμέγα'.split(' '),
  chinese: '你好 世界 中文 分词 模型 语言 深度 学习 计算机 北京 上海 我们 的'.split(' '),
  japanese: 'こんにちは 世界 カタカナ ひらがな 東京 日本語 トークナイザー ですね'.split(' '),
  korean: '안녕하세요 세계 한국어 토큰 서울 감사합니다'.split(' '),
  arabic: 'مرحبا بالعالم اللغة العربية نموذج كلمة السلام عليكم'.split(' '),
  hindi: 'नमस्ते दुनिया भाषा मॉडल हिन्दी शब्द क्षत्रिय प्रश्न'.split(' '),
  hebrew: 'שלום עולם שפה'.split(' '),
  thai: 'สวัสดี ภาษาไทย'.split(' '),
};

const EMOJI = ['😀', '👍', '👍🏽', '👨‍👩‍👧‍👦', '🏳️‍🌈', '❤️', '🇩🇪', '🇯🇵', '👩🏾‍💻', '🧑‍🚀', '✨', '🔥',
  '☕', '♻️', '1️⃣', '🤖', '🦀', '⚡', '🐍', '👁️‍🗨️'];

const SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|begin_of_text|>',
  '<|eot_id|>', '<|start_header_id|>', '<|begin_text|>', '<|end_text|>', '<|begin_header|>',
  '<|end_header|>', '<|end_turn|>', '<|pad|>', '<|reserved_7|>', '<|im_', '<|', '|>',
  '<|begin_text|><|end_text|>', '<think>', '</think>'];

const CODE = [
  'def f(x):\n    return x ** 2 + 1\n',
  'for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}',
  'const y = arr.map((v) => v >>= 1).filter(Boolean); // comment',
  'if a != b and c <= d or e >= f: x //= 3; y **= 2; z %= 7',
  '#include <vector>\nstd::vector<int> v{1, 2, 3};\nauto&& r = v[0];',
  'SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;',
  '    indented\n\t\ttabs\n  \t mixed',
  'x := y << 2 | z >> 3 ^ w & 0xFF; a++; b--; c += 1; d -= 2; e *= 3; f /= 4; g |= 5; h ^= 6',
  'fn main() { println!("{}", "hello 🌍"); }',
  '{"key": [1, 2.5, -3e10, null, true], "nested": {"a": "b"}}',
  '<div class="x">&nbsp;&lt;tag&gt;</div>',
  'https://example.org/path/to/page?query=1&lang=en#section-2',
  'user_name__private = __init__(self, *args, **kwargs)',
  '```python\nprint("x")\n```', '~~~ ```` """docstring""" ### heading',
];

const LATEX = [
  '\\newcommand{\\R}{\\mathbb{R}}', '\\nabla \\cdot \\mathbf{E} = \\rho / \\epsilon_0',
  '$$\\int_0^\\infty e^{-x^2} dx = \\frac{\\sqrt{\\pi}}{2}$$', 'a \\neq b, a \\leq b \\geq c',
  '\\begin{equation}\\label{eq:1} x \\notag \\end{equation}', '\\noindent\\newline\\newpage',
  '\\exists x \\in \\R: x^2 \\ne 1 \\not\\equiv 0', '\\{ a \\} \\[ b \\] \\( c \\)',
  '\\newtheorem{thm}{Theorem}\\nocite{*}\\nolinebreak\\nonumber\\nopagebreak\\normalsize',
  '\\note \\notation \\notag \\nota \\nobreak \\ne{x} \\gtr \\n', '$x_{i,j}^{(k)}$ and $\\alpha$',
];

function pick(random, list) { return list[Math.floor(random() * list.length)]; }
function integer(random, low, high) { return low + Math.floor(random() * (high - low + 1)); }

function sentence(random, languages) {
  const count = integer(random, 1, 14);
  const words = [];
  for (let i = 0; i < count; ++i) words.push(pick(random, WORDS[pick(random, languages)]));
  let text = words.join(pick(random, [' ', ' ', ' ', '  ', '\t', '\n', ', ', '. ']));
  return text + pick(random, ['', '.', '!', '?', '...', ';', ':', ' —', '!!', '?!']);
}

function number(random) {
  switch (integer(random, 0, 9)) {
    case 0: return String(integer(random, 0, 9));
    case 1: return String(integer(random, 0, 1e9));
    case 2: return `${integer(random, 0, 9999)}.${integer(random, 0, 999)}`;
    case 3: return `${integer(random, 1, 99)}${pick(random, ['st', 'nd', 'rd', 'th'])}`;
    case 4: return `${integer(random, 1900, 2099)}-${String(integer(random, 1, 12)).padStart(2, '0')}-${String(integer(random, 1, 28)).padStart(2, '0')}`;
    case 5: return `${integer(random, 1, 28)}/${integer(random, 1, 12)}/${integer(random, 1990, 2030)}`;
    case 6: return `${integer(random, 0, 23)}:${String(integer(random, 0, 59)).padStart(2, '0')}:${String(integer(random, 0, 59)).padStart(2, '0')}`;
    case 7: return `$${integer(random, 1, 999)},${String(integer(random, 0, 999)).padStart(3, '0')}.${integer(random, 10, 99)}`;
    case 8: return `+${integer(random, 1, 99)} (${integer(random, 100, 999)}) ${integer(random, 100, 999)}-${integer(random, 1000, 9999)}`;
    default: return pick(random, ['٣٤٥', '१२३', '１２３', '½', '²³', 'Ⅻ', '3.14159e-10', '-0', '1e+100', '0x1F']);
  }
}

function whitespaceRun(random) {
  const units = [' ', '\t', '\n', '\r\n', '\u00a0', '\u3000', '\u2003', '\u200b', '\r', '\u000b', '\f', '\u0085', '\u2028'];
  let run = '';
  for (let i = integer(random, 1, 8); i > 0; --i) run += pick(random, units);
  return run;
}

function longWord(random) {
  const letters = pick(random, ['abcdefghijklmnopqrstuvwxyz', 'абвгдежзийклмнопрстуфхцчшщъыьэюя', 'αβγδεζηθικλμνξοπρστυφχψω', '的一是不了人我在有他这中大来上']);
  const chars = Array.from(letters);
  const length = integer(random, 50, 1500);
  let word = '';
  if (random() < 0.3) return pick(random, ['a', 'z', '0', ' ', '!', '😀', 'ab']).repeat(length);
  for (let i = 0; i < length; ++i) word += pick(random, chars);
  return word;
}

// NFC-sensitive text: decomposed accents, Hangul jamo, singleton decompositions (Qwen3 has NFC).
const UNNORMALIZED = ['e\u0301', 'A\u030a', 'o\u0308\u0304', 'n\u0303', '\u1100\u1161\u11a8', 'Å',
  '\u212b', '\u2126', 'a\u0328\u0301', 'ộ', 'o\u0323\u0302', '\u0958', 'ﬁ', 'ｱ', 'Ω', 'c\u0327'];

export function makeCorpus(seed = 20240615) {
  const random = makeRandom(seed);
  const corpus = [];
  const allLanguages = Object.keys(WORDS);
  // Fixed edge cases first.
  corpus.push('', ' ', '  ', '\n', '\t', 'a', ' a', 'a ', ' 3', ' egg', 'Hello world', 'Hello, World!',
    '   leading', 'trailing   ', '\n\n\nnewlines\n\n', 'tab\tseparated\tvalues', '\r\n\r\n',
    ...SPECIAL_TOKENS, ...CODE, ...LATEX, ...EMOJI, ...UNNORMALIZED);
  const generators = [
    () => sentence(random, ['english']),
    () => sentence(random, ['english']),
    () => sentence(random, allLanguages),
    () => sentence(random, [pick(random, allLanguages)]),
    () => `${sentence(random, ['english'])} ${number(random)} ${sentence(random, ['english'])}`,
    () => `${number(random)}${pick(random, [' ', '', ', ', '-'])}${number(random)}`,
    () => pick(random, CODE) + pick(random, ['', '\n', ' ']) + pick(random, CODE),
    () => `${pick(random, LATEX)} ${sentence(random, ['english'])} ${pick(random, LATEX)}`,
    () => `${sentence(random, allLanguages)} ${pick(random, EMOJI)}${pick(random, EMOJI)} ${pick(random, EMOJI)}`,
    () => `${whitespaceRun(random)}${sentence(random, allLanguages)}${whitespaceRun(random)}`,
    () => `${pick(random, SPECIAL_TOKENS)}${sentence(random, ['english'])}${pick(random, [' ', '', '\n'])}${pick(random, SPECIAL_TOKENS)}`,
    () => `${sentence(random, ['english'])} ${pick(random, SPECIAL_TOKENS)} ${sentence(random, allLanguages)}`,
    () => `${pick(random, UNNORMALIZED)}${sentence(random, ['french', 'german', 'greek'])}${pick(random, UNNORMALIZED)}`,
    () => (random() < 0.1 ? longWord(random) : sentence(random, ['english', 'russian'])),
    () => `${sentence(random, ['english']).toUpperCase()} ${pick(random, ["'S", "'t", "'RE", "’s", "'ll", "'D"])}`,
  ];
  while (corpus.length < 2400) corpus.push(pick(random, generators)());
  return corpus;
}
