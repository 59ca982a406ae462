"""``wsss-synthetic --out-dir DIR``: write seeded synthetic VOC-layout datasets to ``DIR/<domain>``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from wsss.core.synthetic.dataset import write_dataset
from wsss.core.synthetic.scenes import DOMAINS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsss-synthetic", description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", dest="out", type=Path, default=Path("data/synthetic"), help="writes OUT/source, OUT/target")
    parser.add_argument("--domain", choices=DOMAINS + ("both",), default="both")
    parser.add_argument("--num-train", type=int, default=200)
    parser.add_argument("--num-val", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, nargs=2, default=(160, 240), metavar=("MIN", "MAX"),
                        help="image height and width are drawn from [MIN, MAX]")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    domains = DOMAINS if args.domain == "both" else (args.domain,)
    for domain in domains:
        start = time.perf_counter()
        root = write_dataset(args.out / domain, domain=domain, num_train=args.num_train, num_val=args.num_val,
                             seed=args.seed, size_range=tuple(args.size))
        print(f"{domain}: {args.num_train} train + {args.num_val} val images in {root} "
              f"({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
