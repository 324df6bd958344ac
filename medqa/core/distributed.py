"""One run over several processes (torchrun / accelerate launch): which process is the main one, the run
stamp every rank shares (so Hydra makes one run folder, not one per rank), and whether answering the probes
is a collective (FSDP). Read from the launcher's environment; no process group is needed."""

from __future__ import annotations

import os
from datetime import datetime, timedelta


def rank() -> int:
    """Global rank of this process (0 when not launched by a distributed launcher)."""
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """Rank of this process on its machine: the index of its GPU."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    """Number of processes training this run (1 for a plain `python -m medqa.train`)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Only this process logs to W&B, writes probes.jsonl and saves adapter/run.json/plots."""
    return rank() == 0


def processes_without_gpu() -> bool:
    """Several processes and no GPU: training must ask for the CPU (gloo) backend explicitly, or accelerate
    treats every process as a run of its own."""
    import torch

    return world_size() > 1 and not torch.cuda.is_available()


def shared_stamp(pattern: str) -> str:
    """`datetime.now().strftime(pattern)` as rank 0 saw it, on every rank: the run dir is one folder.

    Rank 0 publishes its stamp in the key-value store the launcher's agent already runs (torchrun and
    accelerate launch start one at MASTER_ADDR:MASTER_PORT); the others wait for it. A new key per restart
    of an elastic job, so a restarted job gets a new folder instead of reusing the failed one."""
    stamp = datetime.now().strftime(pattern)
    if world_size() == 1:
        return stamp
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        raise RuntimeError(
            f"WORLD_SIZE={world_size()} but not launched by torchrun or accelerate launch, so the ranks cannot agree "
            "on a run folder: pass the same hydra.run.dir=... (and hydra.sweep.dir=...) to every rank"
        )
    from torch.distributed import TCPStore

    store = TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        is_master=False,
        timeout=timedelta(minutes=10),  # the other ranks wait while rank 0 imports and composes the config
    )
    key = f"medqa/stamp/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/{pattern}"
    if is_main_process():
        store.set(key, stamp)
        return stamp
    return store.get(key).decode()


def generation_is_collective(model) -> bool:
    """True when the weights are sharded (FSDP 1 or 2): `generate` then needs every rank, with the same
    inputs (transformers sets synced_gpus for FSDP-managed models, so no rank stops early)."""
    if world_size() == 1 or model is None:
        return False
    if getattr(model, "_is_fsdp_managed_module", False):  # FSDP2 (fully_shard), set on every managed module
        return True
    from torch.distributed.fsdp import FullyShardedDataParallel

    return isinstance(model, FullyShardedDataParallel)


def share_from_main(value):
    """Rank 0's `value` on every rank (a no-op in a single process)."""
    import torch.distributed as dist

    if world_size() == 1 or not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
