"""Batched attention for the Qwen-VL vision towers (Qwen2-VL, Qwen2.5-VL, Qwen3-VL).

These towers attend within spans of patches: each visual in full-attention layers, each window in
Qwen2.5-VL's windowed layers. Without flash attention, transformers runs one attention call per
span in a Python loop: a batch of 32 images at 448x448 is 512 window calls per windowed layer,
each too small to keep a GPU busy. ``batch_vision_attention`` replaces that loop with one
scaled-dot-product call per distinct span length (spans of equal length stacked into one batch,
no padding, so nothing is masked and every span sees exactly its own keys): a handful of calls
per layer whatever the batch. A model configured for flash attention keeps its own variable-length
path (flash-attn is used when present and asked for, never required).
"""

from __future__ import annotations

import sys
import types
from typing import Any

import torch
import torch.nn.functional as F

ATTENTION_CLASSES = ("VisionAttention", "Qwen2_5_VLVisionAttention", "Qwen3VLVisionAttention")


def span_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor, scale: float):
    """Attention of each span [cu_seqlens[i], cu_seqlens[i+1]) of ``q, k, v`` (each [seq, heads,
    dim]) to itself, one SDPA call per distinct span length; returns [seq, heads, dim]."""
    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()
    starts = cu_seqlens[:-1].tolist()
    out = torch.empty_like(q)
    by_length: dict[int, list[int]] = {}
    for s, n in zip(starts, lengths):
        if n:
            by_length.setdefault(n, []).append(s)
    for n, span_starts in by_length.items():
        if len(span_starts) * n == q.shape[0]:  # one length covers everything: a reshape, no gather
            idx = None
            qs, ks, vs = (t.reshape(len(span_starts), n, *t.shape[1:]) for t in (q, k, v))
        else:
            idx = (torch.tensor(span_starts, device=q.device)[:, None] + torch.arange(n, device=q.device)).reshape(-1)
            qs, ks, vs = (t.index_select(0, idx).reshape(len(span_starts), n, *t.shape[1:]) for t in (q, k, v))
        # [spans, n, heads, dim] -> [spans, heads, n, dim]
        o = F.scaled_dot_product_attention(qs.transpose(1, 2), ks.transpose(1, 2), vs.transpose(1, 2), scale=scale)
        o = o.transpose(1, 2).reshape(-1, *q.shape[1:])
        if idx is None:
            return o
        out.index_copy_(0, idx, o)
    return out


def _forward(self, hidden_states, cu_seqlens, position_embeddings=None, max_seqlen=None, **kwargs):
    """The vision attention module's forward with the span loop replaced by ``span_attention``."""
    seq = hidden_states.shape[0]
    q, k, v = self.qkv(hidden_states).reshape(seq, 3, self.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    cos, sin = position_embeddings
    q, k = self._unireward_rope(q, k, cos, sin)
    out = span_attention(q, k, v, cu_seqlens, self.scaling)
    return self.proj(out.reshape(seq, -1).contiguous())


def batch_vision_attention(model: Any) -> int:
    """Replaces the per-span attention loop in ``model``'s vision tower (Qwen2-VL, Qwen2.5-VL or
    Qwen3-VL) by ``span_attention``. Returns the number of attention modules changed (0: not a
    Qwen-VL tower, or one configured for flash attention, which is already variable-length)."""
    changed = 0
    for module in model.modules():
        if type(module).__name__ not in ATTENTION_CLASSES or not hasattr(module, "qkv"):
            continue
        if "flash" in str(getattr(module.config, "_attn_implementation", "")):
            continue
        rope = getattr(sys.modules[type(module).__module__], "apply_rotary_pos_emb_vision", None)
        if rope is None:
            continue
        module._unireward_rope = rope
        module.forward = types.MethodType(_forward, module)
        changed += 1
    return changed


def plain_vision_attention(model: Any) -> None:
    """Undoes ``batch_vision_attention`` (for comparisons and benchmarks)."""
    for module in model.modules():
        if "forward" in module.__dict__ and getattr(module, "_unireward_rope", None) is not None:
            del module.forward
