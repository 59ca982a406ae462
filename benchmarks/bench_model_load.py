"""Seconds to build SAM 1 as embed / generate do (with the image encoder) and as training does (without).

    python benchmarks/bench_model_load.py [--model-type vit_h] [--checkpoint FILE]

Without ``--checkpoint`` a random-weight file of the variant is written first (2.5 GB for vit_h,
under the system's temporary folder, kept for the next run). Each build runs in a fresh process,
twice, alternately; the file is in the page cache after the first.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHILD = """
import sys, time, torch
sys.path.insert(0, {repo!r})
from stage1_pseudolabel.pipeline.config import build_config
from stage1_pseudolabel.pipeline.model import load_model
cfg = build_config(overrides={{'model.type': {model!r}, 'model.checkpoint': {path!r}, 'work_dir': {work!r}}})
t = time.perf_counter()
load_model(cfg.model, device=torch.device('cpu'), encoder={encoder})
print(round(time.perf_counter() - t, 2))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-type", default="vit_h")
    p.add_argument("--checkpoint", type=Path, default=None)
    args = p.parse_args(argv)
    path = args.checkpoint or Path(tempfile.gettempdir()) / f"sam_{args.model_type}_random.pth"
    if not path.is_file():
        sys.path.insert(0, str(REPO))
        import torch

        from stage1_pseudolabel.sam.backends.sam1 import build_sam

        torch.save(build_sam(args.model_type, seed=0).state_dict(), path)
    work = tempfile.mkdtemp()
    for _ in range(2):
        for encoder, name in ((True, "with the encoder (embed, generate)"), (False, "without (training)")):
            code = CHILD.format(repo=str(REPO), model=args.model_type, path=str(path), work=work, encoder=encoder)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            print(f"{args.model_type} {name:36s} {out.stdout.strip()} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
