"""Training on several processes with torchrun (gloo on CPU, nccl where CUDA is present).

    torchrun --nproc-per-node 2 -m anymodal.train.distributed momke --data D --dataset iemocap4 --out RUN

The arguments are rt-train's, for any registered family (its trainer uses this context). Every
rank builds the same model (same seed, then rank 0's parameters broadcast) and draws the same
global batch; rank r trains on samples r, r+W, … of it (the distributed sampler) and scales its
mean loss by its share of the batch (MoMKE: of the batch's real utterances; DERL: of its samples). Summing the gradients over ranks (one all-reduce per step, what DDP's reducer does)
then gives exactly the one-process gradient of the global batch, so the runs agree. Validation
runs on every rank (same weights, same selected epoch); only rank 0 logs and writes the run.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that logs, checkpoints and writes the run folder."""
        return self.rank == 0

    def shard(self, n: int) -> np.ndarray:
        """Indices of a global batch of n conversations that this rank trains on."""
        return np.arange(n)[self.rank::self.world]

    def broadcast_parameters(self, model: torch.nn.Module) -> None:
        if self.world > 1:
            for t in model.state_dict().values():
                dist.broadcast(t, src=0)

    def sum_gradients(self, params) -> None:
        """All-reduce (sum) the gradients; a parameter without one contributes zeros."""
        if self.world == 1:
            return
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)


    def sum_value(self, x: float) -> float:
        """A scalar summed over ranks (the global batch's loss from the ranks' weighted shares)."""
        if self.world == 1:
            return x
        t = torch.tensor([x], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t[0])


_CONTEXT = DistContext()


def current() -> DistContext:
    return _CONTEXT


def init_from_env() -> DistContext:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT)."""
    global _CONTEXT
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        _CONTEXT = DistContext(dist.get_rank(), dist.get_world_size())
    return _CONTEXT


def main() -> None:
    # run as `python -m anymodal.train.distributed`, this file is `__main__`, a second copy of the
    # module: the trainers read the context of the imported `anymodal.train.distributed`
    from anymodal.cli import _main, train_app
    from anymodal.train import distributed as imported

    ctx = imported.init_from_env()
    try:
        sys.argv[0] = "rt-train (distributed)"
        if not ctx.is_main:
            os.environ["TQDM_DISABLE"] = "1"
        _main(train_app)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
