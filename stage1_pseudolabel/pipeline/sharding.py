"""Deterministic splitting of an image list into shards (SLURM array jobs) and DDP ranks.

Shard ``i`` of ``N`` is ``ids[i::N]`` of the dataset's id list in its file order: the shards are
disjoint, cover the list, depend on nothing but the list and ``(i, N)``, and are balanced to within
one image. Under ``torchrun`` (``WORLD_SIZE > 1``) each rank further takes its own slice of the shard,
which is the same as shard ``i * W + rank`` of ``N * W`` interleaved; outputs do not depend on it.
"""

from __future__ import annotations

import os
from typing import List, Sequence, Tuple


def shard_ids(ids: Sequence[str], *, shard_index: int, num_shards: int) -> List[str]:
    """``ids[shard_index::num_shards]``.

    Raises:
        ValueError: ``num_shards < 1`` or ``shard_index`` outside ``0..num_shards-1``.
    """
    if num_shards < 1:
        raise ValueError(f"--num-shards must be >= 1, got {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"--shard-index must be in 0..{num_shards - 1}, got {shard_index}")
    return list(ids[shard_index::num_shards])


def world() -> Tuple[int, int]:
    """``(rank, world_size)`` from torchrun's environment (``(0, 1)`` when not distributed)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def rank_shard_ids(ids: Sequence[str], *, shard_index: int, num_shards: int) -> List[str]:
    """This process's images: the shard, then this rank's slice of it under torchrun."""
    rank, size = world()
    return shard_ids(shard_ids(ids, shard_index=shard_index, num_shards=num_shards), shard_index=rank, num_shards=size)
