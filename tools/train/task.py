# The tasks: problems whose every step of computation depends on the previous one, so a fixed
# shallow pass cannot solve long ones while more core iterations can. "arithmetic" (the shipped
# model's): a digit, then operations applied left to right modulo 10, "7+3*9+4=" answered "4".
# "add" and "copy": chains of variable assignments modulo 10 ("a=3;" starts one, "b=a+4;" or
# "b=a;" extends it), interleaved so every variable is defined before it is used, then a question
# "b?" answered "7"; a chain of n links needs n dependent look-ups. Character-level text, one
# token per character, through a Hugging Face tokenizer.json written by `write_tokenizer`.
import json
import random
import string

SPECIALS = ["<|begin_text|>", "<|end_text|>", "<|pad|>"]
CHARS = list(string.ascii_lowercase) + list(string.digits) + list("=+;?\n *")
VOCAB = SPECIALS + CHARS
BOS, EOS, PAD = 0, 1, 2
VOCAB_SIZE = 64  # the rows of the embedding: len(VOCAB) padded to a multiple of 16

# Two kinds: "add" ("b=a+4": each link adds a digit) and "copy" ("b=a": the answer is the chain's
# first digit, so more chains per program keep a guess among the program's digits unlikely).
# Splits: chain lengths (links after the literal) and chains per program.
SPLITS = {
    "add": {
        "train": {"links": (1, 5), "chains": (2, 3)},
        "heldout": {"links": (1, 5), "chains": (2, 3)},
        "harder": {"links": (7, 9), "chains": (2, 2)},
    },
    "copy": {
        "train": {"links": (1, 5), "chains": (3, 4)},
        "heldout": {"links": (1, 5), "chains": (3, 4)},
        "harder": {"links": (6, 7), "chains": (3, 3)},
    },
    # "arithmetic": operations applied left to right modulo 10; splits by the number of operations.
    "arithmetic": {
        "train": {"ops": (1, 10)},
        "heldout": {"ops": (4, 10)},
        "harder": {"ops": (16, 20)},
    },
}
QUESTION = {"add": "?", "copy": "?", "arithmetic": "="}  # the character an answer follows


def apply_operation(value, operator, number):
    """One arithmetic step modulo 10: `value` then "+number" or "*number"."""
    return (value + number) % 10 if operator == "+" else value * number % 10


def make_arithmetic(rng, ops):
    """'7+3*9+4=' and its answer: a digit, then operations applied left to right modulo 10. Every
    operation is a permutation of the ten digits (adding 1-9, multiplying by 3, 7 or 9), so the
    answer stays uniform until the last operation is applied: no shortcut skips a step."""
    value = rng.randint(0, 9)
    text = str(value)
    for _ in range(rng.randint(*ops)):
        if rng.random() < 0.5:
            number = rng.randint(1, 9)
            value, text = apply_operation(value, "+", number), text + f"+{number}"
        else:
            number = rng.choice((3, 7, 9))
            value, text = apply_operation(value, "*", number), text + f"*{number}"
    return text + "=", str(value), text.count("+") + text.count("*")


def make_program(rng, links, chains, add=True):
    """One problem: (prompt, answer, hops) plus every variable's value for extra training targets."""
    n_chains = rng.randint(*chains)
    lengths = [rng.randint(*links) for _ in range(n_chains)]
    lengths[0] = rng.randint(max(links[0], (links[0] + links[1] + 1) // 2), links[1])  # a long one
    names = rng.sample(string.ascii_lowercase, sum(lengths) + n_chains)
    roots = None if add else rng.sample(range(10), n_chains)  # copy: distinct first digits
    chain_steps = []
    for c, length in enumerate(lengths):
        own = [names.pop() for _ in range(length + 1)]
        steps = [(own[0], None, rng.randint(0, 9) if add else roots[c])]
        steps += [(own[i], own[i - 1], rng.randint(1, 9) if add else 0)
                  for i in range(1, length + 1)]
        chain_steps.append(steps)
    # Interleave the chains at random, keeping each chain's order.
    order = [c for c, steps in enumerate(chain_steps) for _ in steps]
    rng.shuffle(order)
    values, hops, parts, cursor = {}, {}, [], [0] * n_chains
    for c in order:
        name, source, number = chain_steps[c][cursor[c]]
        cursor[c] += 1
        if source is None:
            values[name], hops[name] = number, 0
            parts.append(f"{name}={number};")
        else:
            values[name], hops[name] = (values[source] + number) % 10, hops[source] + 1
            parts.append(f"{name}={source}+{number};" if add else f"{name}={source};")
    target = chain_steps[0][-1][0]  # the end of the long chain
    return "".join(parts), target, values, hops


def eval_problem(rng, split, kind="add"):
    spec = SPLITS[kind][split]
    if kind == "arithmetic":
        prompt, answer, ops = make_arithmetic(rng, spec["ops"])
        return {"prompt": prompt, "answer": answer, "hops": ops}
    program, target, values, hops = make_program(rng, spec["links"], spec["chains"], kind == "add")
    return {"prompt": f"{program}{target}?", "answer": str(values[target]), "hops": hops[target]}


def train_text(rng, kind="add", queries=6, level=1.0, excluded=frozenset(), most_chars=255):
    """A training sequence. Chains: a program and several answered queries, the long chain's end
    first; `level` in [0, 1] grows the program from two chains of one link each (a curriculum's
    first steps) to the training split's chains and lengths. Arithmetic: `queries` * 2 answered
    problems ("7+3*9+4=0;...") of up to 2 + level * (the split's most - 2) operations, fewer where
    they would pass `most_chars` (the context less <|begin_text|>). Never a prompt of
    `excluded`."""
    spec = SPLITS[kind]["train"]
    if kind == "arithmetic":
        most = min(spec["ops"][1], 2 + round(level * (spec["ops"][1] - 2)))
        text = ""
        while text.count("=") < 2 * queries:
            prompt, answer, _ = make_arithmetic(rng, (spec["ops"][0], most))
            if len(text) + len(prompt) + len(answer) + 1 > most_chars:
                break
            if prompt not in excluded:
                text += f"{prompt}{answer};"
        return text
    links = (1, spec["links"][0] + round(level * (spec["links"][1] - spec["links"][0])))
    most_chains = 2 + round(level * (spec["chains"][1] - 2))
    chains = (min(spec["chains"][0], most_chains), most_chains)
    program, target, values, _ = make_program(rng, links, chains, kind == "add")
    while f"{program}{target}?" in excluded:
        program, target, values, _ = make_program(rng, links, chains, kind == "add")
    others = sorted(set(values) - {target})
    asked = [target] + rng.sample(others, min(queries - 1, len(others)))
    return program + "".join(f"{v}?{values[v]};" for v in asked)


def assignment_values(program):
    """(index of the ';' that ends each assignment, the value it gives its variable) for a program
    "x=3;b=x+4;...": the training targets that ask every assignment for its chain's value."""
    values, ends, start = {}, [], 0
    while (end := program.find(";", start)) >= 0:
        name, expression = program[start:end].split("=")
        source, _, number = expression.partition("+")
        value = int(source) if source.isdigit() else values[source]
        values[name] = (value + int(number or 0)) % 10
        ends.append((end, values[name]))
        start = end + 1
    return ends


def running_values(text):
    """(index of each operand, the value so far) in arithmetic text "7+3*9+4=4;...": training
    targets that ask every operation for its result, so each core iteration can learn to carry
    the running value one operation further along the prompt."""
    targets, value = [], None
    for index, char in enumerate(text):
        if char.isdigit() and (index == 0 or text[index - 1] in "=;"):
            value = int(char)  # a problem's first digit, or an answer (not an operand)
        elif char.isdigit():
            value = apply_operation(value, text[index - 1], int(char))
            targets.append((index, value))
    return targets


def intermediate_values(text, kind):
    """(index in `text`, value) pairs for the intermediate targets of a training sequence: the ';'
    ending each assignment of a chain program, or each operand of an arithmetic problem."""
    if kind == "arithmetic":
        return running_values(text)
    return assignment_values(text[: text.index("?")].rsplit(";", 1)[0] + ";")


def encode(text, bos=True):
    """Token ids of `text`, <|begin_text|> first as the tokenizer's post-processor adds it."""
    index = {c: i for i, c in enumerate(VOCAB)}
    return [BOS] * bos + [index[c] for c in text]


def write_tasks(path, split, count, seed, kind="add"):
    rng = random.Random(f"{split}-{seed}")
    with open(path, "w") as f:
        for _ in range(count):
            f.write(json.dumps(eval_problem(rng, split, kind)) + "\n")


def write_tokenizer(path):
    """A byte-level BPE with one token per character and no merges (printable ASCII maps to itself
    under the byte-level alphabet; space is 'Ġ', newline 'Ċ')."""
    byte_char = {" ": "\u0120", "\n": "\u010a"}
    vocab = {t: i for i, t in enumerate(SPECIALS)}
    vocab.update({byte_char.get(c, c): len(SPECIALS) + i for i, c in enumerate(CHARS)})
    added = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, t in enumerate(SPECIALS)
    ]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                  "use_regex": False}
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None, "pre_tokenizer": byte_level, "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": SPECIALS[BOS], "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": SPECIALS[BOS], "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {SPECIALS[BOS]: {"id": SPECIALS[BOS], "ids": [BOS],
                                               "tokens": [SPECIALS[BOS]]}}},
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": []},
    }
    with open(path, "w") as f:
        json.dump(tokenizer, f, ensure_ascii=False, indent=1)
