"""Data-parallel training under torchrun (torch.distributed.run): one process per GPU (or CPU, gloo).

The loop stays the same; only rank 0 writes the run folder and emits events. Each optimizer step's
examples are split across ranks, and the loss is normalised by the token count of the whole step,
so N processes compute exactly the update one process would.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, items: list) -> list:
        """This rank's share of one step's examples."""
        return items[self.rank::self.world] if self.active else items

    def sum(self, value: float, device: torch.device) -> float:
        if not self.active:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return float(tensor.item())

    def any(self, flag: bool, device: torch.device) -> bool:
        return self.sum(1.0 if flag else 0.0, device) > 0

    def broadcast(self, value: Any) -> Any:
        """Rank 0's value on every rank (e.g. the run folder's name)."""
        if not self.active:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def init_from_env(device: torch.device) -> DistContext:
    """Join the process group torchrun set up (WORLD_SIZE > 1); a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return DistContext(dist.get_rank(), dist.get_world_size())


def shutdown(context: DistContext) -> None:
    if context.active and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: torch.nn.Module, context: DistContext, device: torch.device) -> torch.nn.Module:
    if not context.active:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    # Buffers (rotary frequencies) are the same constants on every rank; broadcasting them at each
    # forward would be a collective that ranks with different numbers of passes cannot match.
    return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)
