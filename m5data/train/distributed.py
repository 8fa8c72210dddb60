"""This process's place in a ``torchrun`` job, for the training loop: its rank and the group's size
(from the variables torchrun sets), the process group joined with its device, the objective wrapped
for data-parallel training, every process stopped at the same batch, and the group left at the end.
Outside ``torchrun`` a run is rank 0 of 1 and each of these does nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class Distributed:
    """This process's place in a ``torchrun`` job (rank 0 of 1 outside one)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def distributed_from_env() -> Distributed:
    """torchrun sets WORLD_SIZE, RANK and LOCAL_RANK in every process it starts."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    return Distributed(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def join(dev, dist: Distributed):
    """The torch device of this process (``dev``, the device asked for), in a ``torchrun`` process group
    of more than one: the group joined here, and on CUDA the GPU torchrun's LOCAL_RANK picks."""
    import torch

    if dist.world > 1:
        import torch.distributed as tdist

        if dev.type == "cuda":  # one GPU per process: torchrun's LOCAL_RANK picks it
            dev = torch.device("cuda", dist.local_rank)
            torch.cuda.set_device(dev)
        if not tdist.is_initialized():
            tdist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return dev


def data_parallel(objective, dist: Distributed, dev):
    """The objective, wrapped for data-parallel training in a process group of more than one."""
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # find_unused_parameters: a batch without some modality pair or masked position leaves parts unused
        objective = DistributedDataParallel(objective, device_ids=[dev.index] if dev.type == "cuda" else None,
                                            find_unused_parameters=True)
    return objective


def even(batches, dist: Distributed):
    """Under DDP, stop every process at the same batch: the processes' shares of a split differ by
    at most one sample, so one may have a batch more; before each batch they agree (all-reduce MIN
    of "I have one") and all stop when any has run out, or DDP would wait for a peer forever."""
    if dist.world == 1:
        yield from batches
        return
    import torch
    import torch.distributed as tdist

    it = iter(batches)
    device = torch.device("cuda", torch.cuda.current_device()) if tdist.get_backend() == "nccl" else torch.device("cpu")
    while True:
        batch = next(it, None)
        have = torch.tensor([0 if batch is None else 1], device=device)
        tdist.all_reduce(have, op=tdist.ReduceOp.MIN)
        if not int(have.item()):
            return
        yield batch


def leave(dist: Distributed) -> None:
    """Wait for every process of a group of more than one, then leave it (at the run's end)."""
    if dist.world > 1:
        import torch.distributed as tdist

        tdist.barrier()
        tdist.destroy_process_group()
