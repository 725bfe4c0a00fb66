#!/usr/bin/env python3
# Writes the reference vectors of a trained model: PyTorch's float32 logits and latents for a few
# prompts of its task at r = 1 and r = mean_recurrence from a zero initial state, as
# DIR/reference.safetensors (input_ids [1, T] I64, forward_r{R}_logits [1, T, vocab],
# forward_r{R}_latents [1, T, n_embd]) and the prompt's text as DIR/reference.json. The C++ engine
# must reproduce them (tests/test_shipped_model.cpp).
#
#   python3 tools/train/dump_reference.py models/arithmetic
import json
import os
import random
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import task  # noqa: E402
from export import read_safetensors, write_safetensors  # noqa: E402
from model import Huginn  # noqa: E402


def load_model(directory):
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    model = Huginn(config)
    weights = read_safetensors(os.path.join(directory, "model.safetensors"))
    weights.pop("freqs_cis")
    model.load_state_dict(weights)
    return model.eval()


@torch.no_grad()
def main():
    directory = sys.argv[1]
    model = load_model(directory)
    card = os.path.join(directory, "evaluation.json")
    kind = json.load(open(card))["task"] if os.path.exists(card) else "add"
    rng = random.Random("reference")
    first, second = (task.eval_problem(rng, "heldout", kind)["prompt"] for _ in range(2))
    text = f"{first}5;{second}"  # two programs, the first answered
    ids = torch.tensor([task.encode(text)])
    out = {"input_ids": ids}
    for steps in (1, model.cfg["mean_recurrence"]):
        e, table = model.embed(ids)
        state = torch.zeros_like(e)
        for _ in range(steps):
            state = model.core_step(state, e, table)
        out[f"forward_r{steps}_logits"] = model.decode(state, table)
        out[f"forward_r{steps}_latents"] = model.transformer.ln_f(state)
    write_safetensors(os.path.join(directory, "reference.safetensors"), out)
    with open(os.path.join(directory, "reference.json"), "w") as f:
        json.dump({"text": text, "note": "input_ids = <|begin_text|> + text, one id per character"}, f)


if __name__ == "__main__":
    main()
