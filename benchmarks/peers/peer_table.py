# Builds the rdepth vs llama.cpp table from the JSON that run_llama_cpp_peer.sh leaves in a results
# folder (llama-<type>.json from llama-bench -o json, rdepth-<weights>-<prompt>.json from
# rdepth bench --json, meta.json), prints it and writes peer_table.json and peer_table.md there.
import json
import sys
from pathlib import Path

ROWS = [("bf16 vs BF16", "bf16", "bf16"), ("int8 vs Q8_0", "int8", "q8_0"), ("q4 vs Q4_0", "q4", "q4_0")]
COLS = [("prompt 64", "pp64"), ("prompt 128", "pp128"), ("decode", "tg")]


def load(path):
    return json.loads(path.read_text()) if path.is_file() else None


def rdepth_rates(res, weights):
    """tok/s from rdepth bench: prefill per prompt length, decode from the 64-token run."""
    p64, p128 = load(res / f"rdepth-{weights}-64.json"), load(res / f"rdepth-{weights}-128.json")
    return {"pp64": p64 and p64["prefill_tokens_per_second"],
            "pp128": p128 and p128["prefill_tokens_per_second"],
            "tg": p64 and p64["decode_tokens_per_second"]}


def llama_rates(res, qtype):
    """avg tok/s from llama-bench: pp tests have n_gen 0, the tg test n_prompt 0."""
    out = {"pp64": None, "pp128": None, "tg": None}
    for t in load(res / f"llama-{qtype}.json") or []:
        key = f"pp{t['n_prompt']}" if t["n_gen"] == 0 else "tg"
        out[key] = t["avg_ts"]
    return out


def fmt(x, digits=1):
    return "n/a" if x is None else f"{x:.{digits}f}"


def main():
    res = Path(sys.argv[1] if len(sys.argv) > 1 else "build/peers/results")
    meta = load(res / "meta.json") or {}
    first = (load(res / "llama-bf16.json") or [{}])[0]
    rows = []
    for label, w, q in ROWS:
        r, l = rdepth_rates(res, w), llama_rates(res, q)
        ratio = {k: (r[k] / l[k] if r[k] and l[k] else None) for _, k in COLS}
        rows.append({"row": label, "rdepth_weights": w, "llama_cpp_type": q.upper(),
                     "rdepth": r, "llama_cpp": l, "ratio": ratio})
    header = (f"rdepth {meta.get('rdepth_commit', '?')} (huginn-mini, r = {meta.get('steps', '?')}) vs "
              f"llama.cpp {meta.get('llama_cpp_tag', '?')} commit {first.get('build_commit', '?')} "
              f"(npm node-llama-cpp@{meta.get('node_llama_cpp', '?')}), dense llama 132 x 1056, "
              f"{meta.get('threads', '?')} threads, {meta.get('cpu', '?')}; tok/s, decode = tg{meta.get('gen', '?')}")
    kernels = sorted({j["kernels"] for w in ("bf16", "int8", "q4") for n in (64, 128)
                      if (j := load(res / f"rdepth-{w}-{n}.json")) and "kernels" in j})
    header += f"; rdepth kernels {', '.join(kernels) or '?'}"
    if meta.get("llama_cpp_amx") is False:
        header += ", llama.cpp built without AMX (--no-amx)"
    other = meta.get("other_cpu_percent_during", 0)
    if other >= 10:
        header += f"; WARNING: other work took {other}% of the CPUs during the run"
    cells = ["rows"] + [f"{c} {who}" for c, _ in COLS for who in ("rdepth", "llama.cpp", "ratio")]
    lines = ["| " + " | ".join(cells) + " |", "|---" + "|---:" * (len(cells) - 1) + "|"]
    for row in rows:
        vals = [row["row"]]
        for _, k in COLS:
            vals += [fmt(row["rdepth"][k]), fmt(row["llama_cpp"][k]), fmt(row["ratio"][k], 2)]
        lines.append("| " + " | ".join(vals) + " |")
    md = header + "\n\n" + "\n".join(lines) + "\n"
    print(md)
    (res / "peer_table.md").write_text(md)
    (res / "peer_table.json").write_text(json.dumps({"header": header, "meta": meta, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
