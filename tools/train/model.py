# The Huginn architecture in PyTorch, for training: prelude -> core iterated r times on a latent
# state through the adapter on [state ; e] -> ln_f -> coda -> ln_f -> tied head. Parameter names
# are the released checkpoint's (transformer.wte, transformer.prelude.N, transformer.core_block.N,
# transformer.coda.N, transformer.adapter, transformer.ln_f), so the C++ loader reads the export
# unchanged. Shapes: ids [B, T] -> logits [B, T, vocab]; the state is [B, T, n_embd].
import math

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_table(head_dim, length, base):
    """cos/sin of angle pos * base^(-2i/head_dim) for the adjacent pairs (2i, 2i+1): [T, hd/2, 2]."""
    inv = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(length, dtype=torch.float64), inv)
    return torch.stack([angles.cos(), angles.sin()], dim=-1).float()


def rotate_adjacent_pairs(x, table):
    """x [B, T, H, hd] rotated pairwise by table [T, hd/2, 2]."""
    pairs = x.unflatten(-1, (-1, 2))
    cos, sin = table[:, None, :, 0], table[:, None, :, 1]
    x0, x1 = pairs[..., 0], pairs[..., 1]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h, self.heads = cfg["n_embd"], cfg["n_heads"]
        self.head_dim = h // self.heads
        self.Wqkv = nn.Linear(h, 3 * h, bias=False)
        self.proj = nn.Linear(h, h, bias=False)
        self.qk_bias = nn.Parameter(torch.zeros(2, 1, self.heads, self.head_dim))

    def forward(self, x, table):
        b, t, _ = x.shape
        q, k, v = self.Wqkv(x).view(b, t, 3, self.heads, self.head_dim).unbind(2)
        q = rotate_adjacent_pairs(q + self.qk_bias[0], table)
        k = rotate_adjacent_pairs(k + self.qk_bias[1], table)
        q = q.transpose(1, 2) / math.sqrt(self.head_dim)  # [B, H, T, hd], scaled before the product
        k, v = k.transpose(1, 2), v.transpose(1, 2)
        hidden = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        y = (q @ k.transpose(-1, -2)).masked_fill_(hidden, float("-inf")).softmax(-1) @ v
        return self.proj(y.transpose(1, 2).reshape(b, t, -1))


class GatedMLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.fc = nn.Linear(cfg["n_embd"], 2 * cfg["intermediate_size"], bias=False)
        self.proj = nn.Linear(cfg["intermediate_size"], cfg["n_embd"], bias=False)

    def forward(self, x):
        gate, up = self.fc(x).chunk(2, dim=-1)
        return self.proj(F.silu(gate) * up)


class SandwichBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        eps = cfg["norm_eps"]
        self.norm_1, self.norm_2 = RMSNorm(cfg["n_embd"], eps), RMSNorm(cfg["n_embd"], eps)
        self.norm_3, self.norm_4 = RMSNorm(cfg["n_embd"], eps), RMSNorm(cfg["n_embd"], eps)
        self.attn, self.mlp = Attention(cfg), GatedMLP(cfg)

    def forward(self, x, table):
        x = self.norm_2(x + self.attn(self.norm_1(x), table))
        return self.norm_4(x + self.mlp(self.norm_3(x)))


class Transformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h = cfg["n_embd"]
        self.wte = nn.Embedding(cfg["vocab_size"], h)
        self.prelude = nn.ModuleList(SandwichBlock(cfg) for _ in range(cfg["n_layers_in_prelude"]))
        self.adapter = nn.Linear(2 * h, h, bias=False)
        self.core_block = nn.ModuleList(
            SandwichBlock(cfg) for _ in range(cfg["n_layers_in_recurrent_block"])
        )
        self.coda = nn.ModuleList(SandwichBlock(cfg) for _ in range(cfg["n_layers_in_coda"]))
        self.ln_f = RMSNorm(h, cfg["norm_eps"])


class Huginn(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.transformer = Transformer(cfg)
        head_dim = cfg["n_embd"] // cfg["n_heads"]
        self.register_buffer(
            "rope", rope_table(head_dim, cfg["block_size"], cfg["rope_base"]), persistent=False
        )
        self.reset_parameters()

    def reset_parameters(self):
        """Small-init ("takase"-like): std sqrt(2/(5h)) for inputs, scaled down by depth for outputs."""
        h = self.cfg["n_embd"]
        depth = self.cfg["n_layers_in_prelude"] + self.cfg["n_layers_in_coda"]
        depth += self.cfg["n_layers_in_recurrent_block"] * self.cfg["mean_recurrence"]
        std = math.sqrt(2 / (5 * h))
        for name, p in self.named_parameters():
            if name.endswith("qk_bias"):
                nn.init.zeros_(p)
            elif p.dim() == 1:
                nn.init.ones_(p)
            elif name.endswith("proj.weight"):
                nn.init.trunc_normal_(p, std=std / math.sqrt(2 * depth), a=-3 * std, b=3 * std)
            else:
                nn.init.trunc_normal_(p, std=std, a=-3 * std, b=3 * std)

    def initial_state(self, like, generator=None):
        """Truncated normal of std sqrt(2/5) cut at 3 std (the reference's like-init state)."""
        std = math.sqrt(2 / 5)
        s = torch.empty_like(like)
        if generator is None:
            return nn.init.trunc_normal_(s, std=std, a=-3 * std, b=3 * std)
        return nn.init.trunc_normal_(s, std=std, a=-3 * std, b=3 * std, generator=generator)

    def embed(self, ids):
        t = self.transformer
        x = t.wte(ids) * math.sqrt(self.cfg["n_embd"])
        table = self.rope[: ids.shape[1]]
        for block in t.prelude:
            x = block(x, table)
        return x, table

    def core_step(self, state, e, table):
        t = self.transformer
        x = t.adapter(torch.cat([state, e], dim=-1))
        for block in t.core_block:
            x = block(x, table)
        return x

    def decode(self, state, table):
        """ln_f -> coda -> ln_f -> tied head: logits from a latent state."""
        t = self.transformer
        x = t.ln_f(state)
        for block in t.coda:
            x = block(x, table)
        return F.linear(t.ln_f(x), t.wte.weight)

    def forward(self, ids, steps, grad_steps=None, state=None):
        """Logits after `steps` core iterations; only the last `grad_steps` carry gradients."""
        e, table = self.embed(ids)
        if state is None:
            state = self.initial_state(e)
        grad_steps = steps if grad_steps is None else min(grad_steps, steps)
        with torch.no_grad():
            for _ in range(steps - grad_steps):
                state = self.core_step(state, e, table)
        for _ in range(grad_steps):
            state = self.core_step(state, e, table)
        return self.decode(state, table)
