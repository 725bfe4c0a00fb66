#!/usr/bin/env python3
# Trains a recurrent-depth model on a task of task.py (the shipped model: left-to-right arithmetic)
# with the paper's recipe: per step a random number of core iterations (Poisson around a log-normal
# rate with mean `mean_recurrence`), gradients through the last `mean_backprop_depth` of them only,
# a random initial state. Writes DIR/{config.json, model.safetensors, tokenizer.json,
# generation_config.json, tasks/*.jsonl, training_log.json, evaluation.json} and prints the
# evaluation table. tools/train/train_shipped_model.sh gives the shipped model's settings.
#
#   python3 tools/train/train.py --out /tmp/model --task arithmetic --steps 300 --seed 1
import argparse
import json
import math
import os
import random
import sys
import time


def choose_openblas_kernels():
    """Debian's OpenBLAS can miss the CPU in a virtual machine and fall back to its SSE3 kernels,
    5x slower; name the vector width the CPU reports (read when torch loads OpenBLAS)."""
    if "OPENBLAS_CORETYPE" in os.environ or not os.path.exists("/proc/cpuinfo"):
        return
    with open("/proc/cpuinfo") as f:
        flags = next((line.split() for line in f if line.startswith("flags")), [])
    if "avx512f" in flags and "avx512bw" in flags:
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
    elif "avx2" in flags and "fma" in flags:
        os.environ["OPENBLAS_CORETYPE"] = "Haswell"


choose_openblas_kernels()
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import task  # noqa: E402
from export import write_model_dir  # noqa: E402
from model import Huginn  # noqa: E402

CONFIG = {
    "architectures": ["RavenForCausalLM"],
    "model_type": "huginn_raven",
    "torch_dtype": "float32",
    "n_embd": 64,
    "n_heads": 4,
    "n_layers": 4,
    "block_size": 256,
    "vocab_size": task.VOCAB_SIZE,
    "padding_multiple": 16,
    "tie_embeddings": True,
    "intermediate_size": 192,
    "bias": False,
    "architecture_class_name": "RecurrentGPT",
    "block_class_name": "SandwichBlock",
    "norm_class_name": "RMSNorm_llama",
    "norm_eps": 1e-6,
    "mlp_class_name": "GatedMLP",
    "nonlin_name": "SiLU",
    "init_strategy": "takase",
    "init_orthogonal": False,
    "state_init": "like-init",
    "injection_type": "linear",
    "n_layers_in_recurrent_block": 2,
    "mean_recurrence": 8,
    "sampling_scheme": "poisson-lognormal-filling",
    "mean_backprop_depth": 4,
    "n_layers_in_prelude": 1,
    "n_layers_in_coda": 1,
    "qk_bias": True,
    "activation_checkpoint_impl": "per-iteration",
    "rope_base": 50000,
    "bos_token_id": task.BOS,
    "eos_token_id": task.EOS,
    "pad_token_id": task.PAD,
}


def sample_iterations(rng, mean, backprop):
    """The paper's sampler: r = Poisson(LogNormal(log(mean) - sigma^2/2, sigma)) + 1."""
    sigma = 0.5
    rate = math.exp(rng.gauss(math.log(mean) - sigma * sigma / 2, sigma))
    total = int(torch.poisson(torch.tensor([rate])).item()) + 1
    return total, min(total, backprop)


def make_batch(rng, size, excluded, kind="add", queries=6, level=1.0, intermediate_targets=False):
    texts = [task.train_text(rng, kind, queries, level, excluded, CONFIG["block_size"] - 1)
             for _ in range(size)]
    ids = [task.encode(t) for t in texts]
    width = max(map(len, ids))
    batch = torch.full((size, width), task.PAD, dtype=torch.long)
    for row, seq in enumerate(ids):
        batch[row, : len(seq)] = torch.tensor(seq)
    question, = task.encode(task.QUESTION[kind], bos=False)
    targets = torch.full_like(batch, -100)  # loss on each answer and the ';' that ends it
    asks = batch[:, :-1] == question
    targets[:, :-1][asks] = batch[:, 1:][asks]
    answered = torch.zeros_like(asks)
    answered[:, 1:] = asks[:, :-1]
    targets[:, :-1][answered] = batch[:, 1:][answered]
    if intermediate_targets:  # intermediate results predict their value (task.intermediate_values)
        for row, text in enumerate(texts):
            for index, value in task.intermediate_values(text, kind):
                targets[row, index + 1] = task.encode(str(value), bos=False)[0]
    return batch, targets


@torch.no_grad()
def accuracy(model, problems, steps, batch=250):
    """Exact match of the greedy answer token at zero initial state, as `rdepth eval` runs it."""
    model.eval()
    correct = 0
    for start in range(0, len(problems), batch):
        chunk = problems[start : start + batch]
        ids = [task.encode(p["prompt"]) for p in chunk]
        width = max(map(len, ids))
        x = torch.full((len(ids), width), task.PAD, dtype=torch.long)
        for row, seq in enumerate(ids):  # left-aligned; read each row's logits at its last token
            x[row, : len(seq)] = torch.tensor(seq)
        e, table = model.embed(x)
        state = torch.zeros_like(e)
        for _ in range(steps):
            state = model.core_step(state, e, table)
        logits = model.decode(state, table)
        last = torch.tensor([len(s) - 1 for s in ids])
        guess = logits[torch.arange(len(ids)), last].argmax(-1)
        answer = torch.tensor([task.encode(p["answer"], bos=False)[0] for p in chunk])
        correct += (guess == answer).sum().item()
    model.train()
    return correct / len(problems)


def load_tasks(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--task", choices=sorted(task.SPLITS), default="add")
    parser.add_argument("--steps", type=int, default=1800, help="optimizer steps")
    parser.add_argument("--minutes", type=float, default=90.0, help="stop early past this time")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--queries", type=int, default=6, help="answered questions per program")
    parser.add_argument("--curriculum", type=float, default=0.0,
                        help="fraction of the steps over which the problems grow from the smallest "
                             "(two chains of one link, two operations) to the training split's")
    parser.add_argument("--intermediate-targets", action="store_true",
                        help="also train intermediate results to predict their value: the ';' "
                             "ending each assignment, each operand of an arithmetic problem")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--final-problems", type=int, default=200,
                        help="problems per split in the closing evaluation")
    parser.add_argument("--width", type=int, default=CONFIG["n_embd"])
    parser.add_argument("--mlp", type=int, default=CONFIG["intermediate_size"])
    parser.add_argument("--heads", type=int, default=CONFIG["n_heads"])
    parser.add_argument("--prelude", type=int, default=CONFIG["n_layers_in_prelude"])
    parser.add_argument("--coda", type=int, default=CONFIG["n_layers_in_coda"])
    parser.add_argument("--mean-recurrence", type=int, default=CONFIG["mean_recurrence"])
    parser.add_argument("--backprop-depth", type=int, default=CONFIG["mean_backprop_depth"])
    args = parser.parse_args()

    CONFIG.update(n_embd=args.width, intermediate_size=args.mlp, n_heads=args.heads,
                  n_layers_in_prelude=args.prelude,
                  n_layers_in_coda=args.coda, mean_recurrence=args.mean_recurrence,
                  mean_backprop_depth=args.backprop_depth)
    CONFIG["n_layers"] = args.prelude + CONFIG["n_layers_in_recurrent_block"] + args.coda
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    os.makedirs(os.path.join(args.out, "tasks"), exist_ok=True)
    for split, count in (("heldout", 1000), ("harder", 1000)):
        task.write_tasks(os.path.join(args.out, "tasks", f"{split}.jsonl"), split, count, 0, args.task)
    heldout = load_tasks(os.path.join(args.out, "tasks", "heldout.jsonl"))
    harder = load_tasks(os.path.join(args.out, "tasks", "harder.jsonl"))
    excluded = {p["prompt"] for p in heldout + harder}

    model = Huginn(CONFIG)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.95),
    )
    budget = args.minutes * 60
    warmup = 100
    log = {"seed": args.seed, "config": CONFIG, "steps": [], "evals": []}
    start = time.time()
    step = 0
    smoothed = None
    while step < args.steps and time.time() - start < budget:
        progress = step / args.steps  # warm-up, then a cosine down to a tenth
        lr = args.lr * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        level = min(1.0, progress / args.curriculum) if args.curriculum > 0 else 1.0
        ids, targets = make_batch(rng, args.batch, excluded, args.task, args.queries, level,
                                    args.intermediate_targets)
        total, grad_steps = sample_iterations(rng, CONFIG["mean_recurrence"], CONFIG["mean_backprop_depth"])
        logits = model(ids, total, grad_steps)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        smoothed = loss.item() if smoothed is None else 0.98 * smoothed + 0.02 * loss.item()
        log["steps"].append({"step": step, "loss": round(loss.item(), 5), "r": total,
                             "seconds": round(time.time() - start, 1)})
        if step % args.eval_every == 0:
            acc = accuracy(model, heldout[:200], CONFIG["mean_recurrence"])
            shallow = accuracy(model, heldout[:200], 1)
            log["evals"].append({"step": step, "heldout_accuracy_at_mean": acc,
                                 "heldout_accuracy_at_1": shallow})
            print(f"step {step:6d}  {time.time() - start:7.0f} s  loss {smoothed:.4f}  lr {lr:.2e}  "
                  f"level {level:.2f}  held-out acc at r=1: {shallow:.3f}, "
                  f"r={CONFIG['mean_recurrence']}: {acc:.3f}", flush=True)
    log["training_seconds"] = round(time.time() - start, 1)
    log["training_steps"] = step

    write_model_dir(model, CONFIG, args.out)  # first: the weights are safe whatever follows
    table = []  # a first look; `rdepth eval` gives the full table fast
    for steps in (1, 2, 4, 8, 16, 32):
        table.append({"steps": steps, "heldout": accuracy(model, heldout[:args.final_problems], steps),
                      "harder": accuracy(model, harder[:args.final_problems], steps)})
        print(f"r = {steps:3d}: held-out {table[-1]['heldout']:.3f}  harder {table[-1]['harder']:.3f}",
              flush=True)
    log["evaluation"] = table
    with open(os.path.join(args.out, "training_log.json"), "w") as f:
        json.dump(log, f)
    mean = CONFIG["mean_recurrence"]
    card = {"task": args.task, "seed": args.seed, "steps": step, "batch": args.batch, "lr": args.lr,
            "threads": args.threads, "training_seconds": log["training_seconds"],
            "mean_recurrence": mean, "mean_backprop_depth": CONFIG["mean_backprop_depth"],
            "curriculum": args.curriculum, "intermediate_targets": args.intermediate_targets,
            "heldout_accuracy_at_mean": next(r["heldout"] for r in table if r["steps"] == mean),
            "table": table, "command": " ".join(["python3"] + sys.argv)}
    with open(os.path.join(args.out, "evaluation.json"), "w") as f:
        json.dump(card, f, indent=1)


if __name__ == "__main__":
    main()
