"""Seconds per synthetic scene (render only, and written as a VOC-layout dataset), per domain.

    python benchmarks/bench_synthetic.py [--scenes 50] [--size 240]

Target: about 25 ms a 240 px scene on one core (the demo renders 60 scenes, the proxy pretraining
thousands). A benchmark, not a test: wall-clock limits are flaky on a shared machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsss.core.synthetic import render_scene, write_dataset  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=50)
    parser.add_argument("--size", type=int, default=240)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"synthetic scenes, {args.scenes} per domain, {args.size} px, one thread")
    for domain in ("source", "target"):
        t0 = time.perf_counter()
        for i in range(args.scenes):
            render_scene(seed=0, domain=domain, index=i, height=args.size, width=args.size)
        render = (time.perf_counter() - t0) / args.scenes
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            write_dataset(Path(tmp) / domain, domain=domain, num_train=args.scenes, num_val=0, seed=0)
            written = (time.perf_counter() - t0) / args.scenes
        print(f"  {domain:<7} render {render * 1000:6.1f} ms/scene   render + write {written * 1000:6.1f} ms/scene")
    return 0


if __name__ == "__main__":
    sys.exit(main())
