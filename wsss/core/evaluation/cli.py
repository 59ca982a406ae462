"""``wsss-evaluate --pred DIR --gt DIR [--list FILE] [--json FILE]``: per-class IoU table, mIoU, pixel accuracy.

Exit status 0 on success, 2 on bad input (missing predictions, size mismatch, invalid values), with
the error on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from wsss.core.atomic import write_json
from wsss.core.evaluation.folders import evaluate_folders
from wsss.core.cli import run_cli
from wsss.core.weak_labels.voc import read_id_list


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsss-evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--pred", required=True, type=Path, help="folder of predicted <id>.png label maps")
    parser.add_argument("--gt", required=True, type=Path, help="folder of ground-truth <id>.png (e.g. SegmentationClass)")
    parser.add_argument("--list", type=Path, default=None,
                        help="id list (ImageSets/Segmentation/<split>.txt); default: every PNG in --pred")
    parser.add_argument("--json", type=Path, default=None, help="also write the metrics as JSON here")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        ids = read_id_list(args.list) if args.list is not None else None
        metrics = evaluate_folders(pred_dir=args.pred, gt_dir=args.gt, ids=ids)
        print(metrics.format_table())
        if args.json is not None:
            write_json(args.json, metrics.to_dict())
            print(f"wrote {args.json}")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
