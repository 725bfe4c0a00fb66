#!/usr/bin/env python3
# Writes a trained model directory's model card (README.md) and loss curve (loss_curve.png) from
# the files train.py left there: evaluation.json (recipe and accuracy table) and
# training_log.json (the loss of every step). Needs Debian's python3-matplotlib.
#
#   python3 tools/train/model_card.py models/arithmetic
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


TASK_TEXT = {
    "arithmetic": """A problem is a digit followed by operations, applied **left to right, modulo 10**; the answer
is the resulting digit:

    7+3*9+4=      ->  4        ((7 + 3) * 9 + 4) mod 10

Each operation adds 1-9 or multiplies by 3, 7 or 9: every one is a permutation of the ten digits,
so the answer is uniform (a guess is right one time in ten) until the last operation is applied,
and no operation can be skipped. Applying n operations needs n dependent steps: a fixed number of
layers can only apply a fixed number of them, while each core iteration can apply more. Training
problems have 1-10 operations; the held-out split has 4-10, the harder split 16-20: longer than
any problem seen in training.
""",
    "copy": """A program defines three or four chains of variables: a chain starts with a digit (`k=7`), each
link copies the previous variable (`q=k`), and every variable is defined before it is used. The
question asks for the end of the longest chain:

    x=3;k=7;b=x;q=k;c=b;c?      ->  3

The answer needs one look-up per link, in order, so a fixed number of layers can only follow a
fixed number of links; the chains start with distinct digits, so a guess among the program's
digits is right one time in three or four. Training and held-out programs have 3-4 chains of 1-5
links (the asked chain has 3-5); the harder split has 3 chains of 6-7 links (the asked one 7):
longer than any chain seen in training.
""",
    "add": """A program defines a few chains of variables; each link adds a digit modulo 10
(`b=a+4`), and every variable is defined before it is used. The question asks for the end of the
longest chain:

    x=3;k=7;b=x+4;q=k+1;c=b+2;c?      ->  9

The answer needs one look-up and one addition per link, in order. Training and held-out problems
have 2-3 chains of 1-5 links (the asked chain has 3-5); the harder split has 2 chains of 7-9 links
(the asked one 8-9): longer than any chain seen in training.
""",
}


LOSS_TEXT = {
    "arithmetic": "Loss on every answer digit and the ';' after it (12 problems per sequence); "
                  "freshly generated problems, never a held-out one.",
    "copy": "Loss on every answer digit and the ';' after it (6 questions per program, the "
            "longest chain's end first); freshly generated programs, never a held-out one.",
}
LOSS_TEXT["add"] = LOSS_TEXT["copy"]
INTERMEDIATE_TEXT = {  # train.py --intermediate-targets
    "arithmetic": " Intermediate targets: each operand's position is also trained to give the value "
                  "so far (`7+3` -> 0), so every operation has its own target.",
    "copy": " Intermediate targets: the ';' ending each assignment is also trained to give the "
            "variable's value.",
}
INTERMEDIATE_TEXT["add"] = INTERMEDIATE_TEXT["copy"]


def loss_curve(log, path):
    losses = [s["loss"] for s in log["steps"]]
    window = 25
    smooth = [sum(losses[max(0, i - window + 1): i + 1]) / len(losses[max(0, i - window + 1): i + 1])
              for i in range(len(losses))]
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.6))
    ax[0].plot(losses, color="0.75", lw=0.6, label="per step")
    ax[0].plot(smooth, color="C0", lw=1.5, label=f"mean of {window}")
    ax[0].set_xlabel("optimizer step")
    ax[0].set_ylabel("cross-entropy on answers and their ';'")
    ax[0].legend()
    evals = log["evals"]
    ax[1].plot([e["step"] for e in evals], [e["heldout_accuracy_at_mean"] for e in evals], "o-")
    ax[1].set_xlabel("optimizer step")
    ax[1].set_ylabel(f"held-out accuracy at r = {log['config']['mean_recurrence']}")
    ax[1].set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    directory = sys.argv[1]
    with open(os.path.join(directory, "evaluation.json")) as f:
        card = json.load(f)
    with open(os.path.join(directory, "training_log.json")) as f:
        log = json.load(f)
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    loss_curve(log, os.path.join(directory, "loss_curve.png"))
    at_mean = card["heldout_accuracy_at_mean"]
    at_one = card["table"][0]["heldout"]
    status = (f"At r = 1 it answers {100 * at_one:.1f}% of the held-out problems, at r = "
              f"{card['mean_recurrence']} {100 * at_mean:.1f}%.")
    if at_mean - at_one < 0.15:
        status += (" **It has not learned the task yet**: the accuracy hardly depends on r, "
                   "so it guesses instead of iterating; a longer training is needed.")
    elif at_mean < 0.9:
        status += (" Depth helps, but **it has not mastered the task**: it carries the first steps "
                   "of a problem through its iterations, not yet all of them; a longer training "
                   "is needed.")
    rows = "\n".join(f"| {r['steps']} | {100 * r['heldout']:.1f}% | {100 * r['harder']:.1f}% |"
                     for r in card["table"])
    h, m = config["n_embd"], config["intermediate_size"]
    blocks = config["n_layers_in_prelude"] + config["n_layers_in_recurrent_block"] + config["n_layers_in_coda"]
    params = blocks * (4 * h * h + 3 * h * m + 4 * h + 2 * h) + 2 * h * h + config["vocab_size"] * h + h
    name = os.path.basename(os.path.normpath(directory))
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    path = os.path.relpath(os.path.abspath(directory), root)
    if path.startswith(".."):
        path = os.path.abspath(directory)
    targets = LOSS_TEXT[card["task"]] + (INTERMEDIATE_TEXT[card["task"]]
                                         if card.get("intermediate_targets") else "")
    curriculum = card.get("curriculum", 0)
    if curriculum:
        targets += (f" Curriculum: the problems grow to the training split's size over the first "
                    f"{100 * curriculum:.0f}% of the steps.")
    text = f"""# {name}: a task that needs depth, and a recurrent-depth model trained on it

A model of the Huginn architecture ({config['n_layers_in_prelude']} prelude,
{config['n_layers_in_recurrent_block']} core and {config['n_layers_in_coda']} coda sandwich blocks,
width {h}, {config['n_heads']} heads, MLP {m}, {params / 1e6:.2f} M parameters, float32), trained by
`tools/train/train.py` on the task below. It is the default model of
`scripts/demo.sh` and the README. {status}

## Task
{TASK_TEXT[card['task']]}
Prompts are text through `tokenizer.json` (one token per character, `<|begin_text|>` first); the
answer is one digit. `tasks/heldout.jsonl` and `tasks/harder.jsonl` hold 1000 problems each
(generated from seed 0, excluded from training).

## Recipe (the paper's)
- Per step, r = Poisson(LogNormal(log {card['mean_recurrence']} - 1/8, 1/2)) + 1 core iterations,
  gradients through the last {card['mean_backprop_depth']} only; the initial state is random
  (truncated normal, std sqrt(2/5)); the adapter reads [state ; e].
- {targets}
- AdamW (lr {card['lr']}, betas 0.9/0.95, weight decay 0.1), 100 warm-up steps, cosine to a tenth;
  batch {card['batch']}; {card['steps']} steps; seed {card['seed']}; {card['threads']} thread(s).
- Training time: {card['training_seconds'] / 60:.0f} minutes on one core of the project's 2-core
  machine. Command: `{card['command']}` (`tools/train/train_shipped_model.sh` runs it and the rest).
- Reproducible bit for bit: one thread and fixed seeds. The shipped model, trained on an Intel
  Xeon, retrained on an AMD Zen 5 to the same bytes (weights, reference vectors, training log and
  the table below).

## Accuracy (exact match of the greedy answer, zero initial state, PyTorch float32, the first 200 problems of each split)

| r | held-out | harder (longer problems) |
|---:|---:|---:|
{rows}

`rdepth eval --model {path} --tasks {path}/tasks/heldout.jsonl,{path}/tasks/harder.jsonl`
gives this table with the C++ engine. `loss_curve.png` shows the training loss and the held-out
accuracy during training. `reference.safetensors` holds PyTorch's logits and latents for one
prompt at r = 1 and r = {card['mean_recurrence']}; the tests check the engine against them.
"""
    with open(os.path.join(directory, "README.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
