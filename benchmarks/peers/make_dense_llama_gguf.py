# Writes a random-weight dense llama GGUF (BF16 matrices, F32 norms) whose compute per token equals
# huginn-mini's at r = 32 core iterations: 132 layers = 2 prelude + 4 core x 32 + 2 coda.
# Needs numpy and llama.cpp's gguf-py on PYTHONPATH (run_llama_cpp_peer.sh sets both up).
import argparse

import numpy as np

import gguf


def bf16(rng, shape, scale):
    """Normal(0, 1) * scale, rounded to nearest-even bfloat16, as the uint16 bit patterns."""
    x = (rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)).view(np.uint32)
    x += 0x7FFF + ((x >> 16) & 1)
    return (x >> 16).astype(np.uint16)


def main():
    p = argparse.ArgumentParser(description="random dense llama GGUF (BF16)")
    p.add_argument("out")
    p.add_argument("--layers", type=int, default=132)
    p.add_argument("--width", type=int, default=1056)
    p.add_argument("--heads", type=int, default=11)
    p.add_argument("--kv-heads", type=int, default=11)
    p.add_argument("--ffn", type=int, default=3584)
    p.add_argument("--vocab", type=int, default=65536)
    p.add_argument("--context", type=int, default=2048)
    p.add_argument("--scale", type=float, default=0.02)
    p.add_argument("--seed", type=int, default=1234)
    a = p.parse_args()
    head = a.width // a.heads
    kv = a.kv_heads * head

    w = gguf.GGUFWriter(a.out, "llama")
    w.add_name("dense llama, huginn-mini compute (random weights)")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)
    w.add_block_count(a.layers)
    w.add_context_length(a.context)
    w.add_embedding_length(a.width)
    w.add_feed_forward_length(a.ffn)
    w.add_head_count(a.heads)
    w.add_head_count_kv(a.kv_heads)
    w.add_rope_dimension_count(head)
    w.add_rope_freq_base(50000.0)  # as huginn-mini; irrelevant to the compute
    w.add_layer_norm_rms_eps(1e-6)
    w.add_vocab_size(a.vocab)
    w.add_tokenizer_model("none")  # no tokenizer: llama.cpp adds vocab_size dummy tokens

    # (name, numpy shape [rows, cols]); no output.weight: the head is tied to token_embd.
    mats = [("token_embd.weight", (a.vocab, a.width))]
    norms = ["output_norm.weight"]
    for i in range(a.layers):
        b = f"blk.{i}."
        norms += [b + "attn_norm.weight", b + "ffn_norm.weight"]
        mats += [(b + "attn_q.weight", (a.width, a.width)), (b + "attn_k.weight", (kv, a.width)),
                 (b + "attn_v.weight", (kv, a.width)), (b + "attn_output.weight", (a.width, a.width)),
                 (b + "ffn_gate.weight", (a.ffn, a.width)), (b + "ffn_up.weight", (a.ffn, a.width)),
                 (b + "ffn_down.weight", (a.width, a.ffn))]
    for name in norms:
        w.add_tensor_info(name, (a.width,), np.dtype(np.float32), 4 * a.width)
    for name, shape in mats:
        w.add_tensor_info(name, shape, np.dtype(np.uint16), 2 * shape[0] * shape[1],
                          raw_dtype=gguf.GGMLQuantizationType.BF16)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    rng = np.random.default_rng(a.seed)
    ones = np.ones(a.width, dtype=np.float32)
    for _ in norms:  # tensors are written in the order their infos were added
        w.write_tensor_data(ones)
    for _, shape in mats:
        w.write_tensor_data(bf16(rng, shape, a.scale))
    w.close()
    n = sum(r * c for _, (r, c) in mats)
    print(f"wrote {a.out}: {a.layers} layers, {n / 1e9:.3f} G matrix parameters (BF16)")


if __name__ == "__main__":
    main()
