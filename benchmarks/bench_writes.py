"""Cost of durable bulk writes: ms per ViT-H-size cache entry (2 MB fp16) with and without fsync.

    python benchmarks/bench_writes.py [--entries 100] [--dir .]

``durable_writes: false`` (the default) renames each complete entry into place; ``true`` also
fsyncs the file and its folder, so that the entry survives a power loss. Alternating rounds of
each, in a temporary folder under ``--dir`` (the disk the cache would be on).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    from stage1_pseudolabel.pipeline.cache import CacheKey, EmbeddingCache

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entries", type=int, default=100)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--dir", default=".", help="where the temporary cache goes")
    args = p.parse_args(argv)
    key = CacheKey(model_type="vit_h", encoder_fingerprint="bench", encoder_size=1024, embedding_shape=(256, 64, 64))
    embedding = torch.randn(256, 64, 64)
    ms = {False: [], True: []}
    for _ in range(args.rounds):
        for durable in (False, True):
            with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
                cache = EmbeddingCache(Path(tmp) / "cache", key=key, durable=durable)
                t0 = time.perf_counter()
                for i in range(args.entries):
                    cache.save(f"image_{i}", embedding, height=375, width=500)
                ms[durable].append((time.perf_counter() - t0) / args.entries * 1000)
    for durable, values in ms.items():
        print(f"{'durable (fsync)' if durable else 'atomic rename  '}: {statistics.median(values):6.1f} ms per 2 MB entry")
    return 0


if __name__ == "__main__":
    sys.exit(main())
