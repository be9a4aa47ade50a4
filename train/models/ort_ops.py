"""ONNX Runtime contrib ops emitted straight from the traced model, for the ORT-optimised copy
of each graph (export/ort_graphs.py). Eager PyTorch computes the standard maths (what the
portable graph computes); the ONNX export writes one `com.microsoft` node instead of the
chain of standard ops. Used only under the models' export-time `ort_ops` switch: training and
the portable (TensorRT) graphs never see these nodes.

Why emitted, not found: ORT's own fusions (session level and `onnxruntime.transformers`)
match BERT-shaped subgraphs with 2-D weights; the stacked experts' batched [e, d, k] weights
and reshape-based heads are not such a pattern, so nothing would find them.
"""

from __future__ import annotations

import math

import torch

ORT_DOMAIN = "com.microsoft"
# the oldest onnxruntime that runs these nodes on the CPU: runtime/backends/ort.py ORT_GRAPHS_MIN_VERSION


def _attention(q, k, v, key_mask, heads: int):
    """q, k, v [B, L, d]; key_mask [B, L] int32 (1 = attendable) -> [B, L, d]"""
    B, L, d = q.shape
    hd = d // heads
    q, k, v = (t.reshape(B, L, heads, hd).transpose(1, 2) for t in (q, k, v))  # [B, H, L, hd]
    scores = (q * (1.0 / math.sqrt(hd))) @ k.transpose(-1, -2)  # [B, H, L, L]
    # ORT adds mask_filter_value to blocked keys (a row with no valid key stays finite)
    scores = scores + (1 - key_mask[:, None, None, :].to(scores.dtype)) * -10000.0
    return (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(B, L, d)


class MultiHeadAttentionOp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, key_mask, heads: int):
        return _attention(q, k, v, key_mask, heads)

    @staticmethod
    def symbolic(g, q, k, v, key_mask, heads: int):
        none = g.op("prim::Constant").setType(torch._C.OptionalType.ofTensor())  # noqa: SLF001 (no bias)
        out = g.op(f"{ORT_DOMAIN}::MultiHeadAttention", q, k, v, none, key_mask, num_heads_i=heads)
        return out.setType(q.type())  # [B, L, d] like q: shape inference continues past the node


def multi_head_attention(qkv: torch.Tensor, key_mask: torch.Tensor, heads: int) -> torch.Tensor:
    """Self-attention over packed projections, one com.microsoft::MultiHeadAttention node.
    qkv [B, L, 3d] (q | k | v, heads inside each); key_mask [B, L] bool -> [B, L, d]"""
    q, k, v = qkv.split(int(qkv.shape[-1]) // 3, dim=-1)
    return MultiHeadAttentionOp.apply(q, k, v, key_mask.to(torch.int32), heads)
