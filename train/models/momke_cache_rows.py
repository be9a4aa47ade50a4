"""Reading S streams' caches out of a pool of N (batched step graphs): one Gather of the rows
the batch needs — each stream's row and only the first T slots, T = the most any stream of the
batch has filled — so a batched call copies what it attends to, never whole pools or caches."""

from __future__ import annotations

import torch


def filled_rows(pool: torch.Tensor, stream: torch.Tensor, cached: torch.Tensor) -> torch.Tensor:
    """Indices into pool viewed as [N·E·H·C, dh] of stream s's slots 0..T-1 for every (expert,
    head). pool [N, E, H, C, dh]; stream [S] int64 (rows of the pool); cached [S] int64
    -> [S, E·H, T] int64 (T >= 1: a batch of first utterances still reads one masked slot)"""
    E, H, C = int(pool.shape[1]), int(pool.shape[2]), pool.shape[3]
    T = torch.clamp(cached.max(), min=1)
    blocks = stream[:, None] * (E * H) + torch.arange(E * H, device=pool.device)[None, :]  # [S, E·H]
    return (blocks * C)[:, :, None] + torch.arange(T, device=pool.device)[None, None, :]  # [S, E·H, T]


def gather_filled(pool: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """pool [N, E, H, C, dh]; rows from filled_rows [S, E·H, T] -> [S, E, H, T, dh]"""
    E, H, dh = int(pool.shape[1]), int(pool.shape[2]), int(pool.shape[4])
    flat = pool.reshape(-1, dh)  # [N·E·H·C, dh]: a view, no copy
    return flat[rows].reshape(rows.shape[0], E, H, -1, dh)
