#!/usr/bin/env python3
# Plots the latent dynamics that `rdepth trace --json --states` records (the paper's section 7):
#  - convergence: ||s_i - s_r|| against the iteration i, one curve per token (log scale), with
#    the iteration from which each token's early decode is final;
#  - orbits: each chosen token's states s_0..s_r projected on their own first principal
#    components (PC1-PC2 and PC3-PC4), as the paper draws them.
# Writes PNG or SVG by the output's extension. Needs Debian's python3-matplotlib and numpy.
#
#   rdepth trace --model DIR --prompt TEXT --steps 32 --json --states > trace.json
#   python3 tools/analysis/plot_latents.py trace.json --out latents.png [--tokens 5,9,12]
import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def label(token):
    text = token["text"].replace("\n", "\\n")
    return f"{token['position']}:{text}" if text else str(token["position"])


def settled_at(iterations):
    """The first iteration from which the early decode stays the final one."""
    final = iterations[-1]["argmax"]
    at = len(iterations)
    while at > 1 and iterations[at - 2]["argmax"] == final:
        at -= 1
    return at


def principal_components(states, count):
    centred = states - states.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:count].T


def main():
    parser = argparse.ArgumentParser(description="Plot rdepth trace output.")
    parser.add_argument("trace", help="JSON from rdepth trace --json --states")
    parser.add_argument("--out", required=True, help="figure file (.png or .svg)")
    parser.add_argument("--tokens", help="positions for the orbits (default: the last three)")
    parser.add_argument("--title", default="")
    args = parser.parse_args()

    with open(args.trace) as f:
        trace = json.load(f)
    tokens = trace["tokens"]
    if not tokens or "states" not in tokens[0]:
        raise SystemExit(f"{args.trace}: no states; run rdepth trace with --json --states")
    chosen = [int(p) for p in args.tokens.split(",")] if args.tokens else \
        [t["position"] for t in tokens[-3:]]
    for p in chosen:
        if not 0 <= p < len(tokens):
            raise SystemExit(f"--tokens: position {p} is not in the trace (0..{len(tokens) - 1})")

    fig = plt.figure(figsize=(13, 3.6 * (1 + len(chosen)) / 2 + 1.5))
    grid = fig.add_gridspec(1 + (len(chosen) + 1) // 2, 4)
    ax = fig.add_subplot(grid[0, :2])
    colours = plt.cm.viridis(np.linspace(0, 1, len(tokens)))
    for token, colour in zip(tokens, colours):
        distances = [max(s["distance_to_last"], 1e-6) for s in token["iterations"][:-1]]
        ax.plot(range(1, len(distances) + 1), distances, color=colour, lw=1, alpha=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("core iteration i")
    ax.set_ylabel("||s_i - s_r||")
    ax.set_title("convergence of every token's latent state")

    ax = fig.add_subplot(grid[0, 2:])
    settled = [settled_at(t["iterations"]) for t in tokens]
    ax.bar(range(len(tokens)), settled, color=colours)
    ax.set_xticks(range(len(tokens)))
    ax.set_xticklabels([t["text"].replace("\n", "\\n") for t in tokens], fontsize=6)
    ax.set_ylabel("iteration")
    ax.set_title("iteration from which the early decode is final")

    for k, position in enumerate(chosen):
        token = tokens[position]
        states = np.asarray(token["states"], dtype=np.float64)
        projected = principal_components(states, 4)
        for half in range(2):
            ax = fig.add_subplot(grid[1 + k // 2, 2 * (k % 2) + half])
            x, y = projected[:, 2 * half], projected[:, 2 * half + 1]
            ax.plot(x, y, color="0.6", lw=0.8)
            ax.scatter(x, y, c=np.arange(len(x)), cmap="plasma", s=12, zorder=3)
            ax.scatter(x[:1], y[:1], marker="x", color="black", zorder=4)
            ax.set_title(f"token {label(token)}: PC{2 * half + 1}-PC{2 * half + 2}", fontsize=9)
            ax.tick_params(labelsize=6)
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
