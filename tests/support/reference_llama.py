"""A plain numpy Llama forward pass over the original (Meta-layout) weights, in float64.

It follows Meta's reference model (llama/model.py): RMSNorm, rotary embeddings on interleaved
pairs (x[2i], x[2i+1]) of each head, grouped-query attention with a causal mask, SwiGLU. The
converter's output is judged against it, so it shares no code with the converter.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tests.support.convert_checkpoints import TinyLlama

Array = np.ndarray[Any, Any]


def _rms_norm(x: Array, weight: Array, eps: float) -> Array:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def _llama31_scaled(freqs: Array, factor: float) -> Array:
    """Meta's apply_scaling (llama-models, Llama 3.1+): low 1, high 4, original context 8192."""
    low, high, old_context = 1.0, 4.0, 8192
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < old_context / high:
            out.append(freq)
        elif wavelen > old_context / low:
            out.append(freq / factor)
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            out.append((1 - smooth) * freq / factor + smooth * freq)
    return np.array(out)


def _rope(x: Array, positions: Array, theta: float, scale: float | None) -> Array:
    """Rotate each (x[..., 2i], x[..., 2i+1]) pair by position × frequency i. x: (T, heads, head_dim)."""
    head_dim = x.shape[-1]
    freqs = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    if scale is not None:
        freqs = _llama31_scaled(freqs, scale)
    angles = positions[:, None] * freqs[None, :]  # (T, head_dim/2)
    cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


def forward(model: TinyLlama, tokens: list[int]) -> Array:
    """Logits (len(tokens), vocab) for every position of `tokens` (no BOS is added)."""
    w = {name: value.astype(np.float64) for name, value in model.weights.items()}
    n, hd = len(tokens), model.head_dim
    group = model.n_heads // model.n_kv_heads
    positions = np.arange(n, dtype=np.float64)
    mask = np.triu(np.full((n, n), -np.inf), k=1)
    h = w["tok_embeddings.weight"][tokens]
    for i in range(model.n_layers):
        p = f"layers.{i}."
        x = _rms_norm(h, w[p + "attention_norm.weight"], model.norm_eps)
        q = (x @ w[p + "attention.wq.weight"].T).reshape(n, model.n_heads, hd)
        k = (x @ w[p + "attention.wk.weight"].T).reshape(n, model.n_kv_heads, hd)
        v = (x @ w[p + "attention.wv.weight"].T).reshape(n, model.n_kv_heads, hd)
        q = _rope(q, positions, model.rope_theta, model.rope_scale)
        k = _rope(k, positions, model.rope_theta, model.rope_scale)
        k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)  # head j uses KV head j // group
        scores = np.einsum("qhd,khd->hqk", q, k) / math.sqrt(hd) + mask
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        attended = np.einsum("hqk,khd->qhd", scores, v).reshape(n, model.dim)
        h = h + attended @ w[p + "attention.wo.weight"].T
        x = _rms_norm(h, w[p + "ffn_norm.weight"], model.norm_eps)
        gate = x @ w[p + "feed_forward.w1.weight"].T
        up = x @ w[p + "feed_forward.w3.weight"].T
        h = h + (gate / (1 + np.exp(-gate)) * up) @ w[p + "feed_forward.w2.weight"].T
    h = _rms_norm(h, w["norm.weight"], model.norm_eps)
    return h @ w["output.weight"].T
