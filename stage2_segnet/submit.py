"""Pack test-set predictions as the PASCAL VOC evaluation server takes them.

    wsss-stage2-submit --pred PREDS --data VOC2012 [--out submission.tar.gz] [--comp comp6]

``PREDS`` holds ``<id>.png`` for every image of ``ImageSets/Segmentation/test.txt`` (what
``wsss-stage2-test --split test --out-dir PREDS`` writes). Each is checked (values 0..20 only: the
server takes no 255; exactly the image's size) and written as a VOC palette PNG to
``results/VOC2012/Segmentation/<comp>_test_cls/<id>.png`` inside the tar. ``comp6`` is the
competition for methods trained with data beyond VOC (SAM's pretraining is); ``comp5`` VOC only.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from wsss.core.cli import run_cli
from wsss.core.masks import write_mask
from wsss.core.weak_labels.errors import InvalidMaskError, MissingFileError
from wsss.core.weak_labels.images import image_size, read_label_png
from wsss.core.datasets import voc_split_list
from wsss.core.weak_labels.voc import read_id_list

NUM_FOREGROUND = 20


def check_prediction(path: Path, image: Path) -> np.ndarray:
    """The prediction at ``path`` (``uint8 [H, W]``, 0..20) for the image at ``image``.

    Raises:
        MissingFileError, SizeMismatchError, InvalidMaskError: (all name the file) no file, another
            size than the image, or values outside 0..20 (255 included).
    """
    height, width = image_size(image)
    mask = read_label_png(path, num_foreground=NUM_FOREGROUND, height=height, width=width, what="prediction")
    if (mask == 255).any():
        raise InvalidMaskError(path, "has 255 (void) pixels; the evaluation server takes classes 0..20 only")
    return mask


def pack(pred_dir: Path, data: Path, out: Path, *, comp: str = "comp6") -> List[str]:
    """Write the submission tar ``out``; returns the ids packed (all of the test list)."""
    ids = read_id_list(voc_split_list(data, "test"))
    missing = [i for i in ids if not (pred_dir / f"{i}.png").is_file()]
    if missing:
        raise MissingFileError(pred_dir, f"{len(missing)} of {len(ids)} test prediction(s) missing, e.g. "
                                         f"{', '.join(missing[:5])}")
    folder = Path("results") / "VOC2012" / "Segmentation" / f"{comp}_test_cls"
    with tempfile.TemporaryDirectory() as tmp:
        for image_id in ids:
            mask = check_prediction(pred_dir / f"{image_id}.png", data / "JPEGImages" / f"{image_id}.jpg")
            write_mask(Path(tmp) / folder / f"{image_id}.png", mask, durable=False)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, "w:gz") as tf:
            tf.add(Path(tmp) / "results", arcname="results")
        partial.replace(out)
    return ids


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="wsss-stage2-submit", description=__doc__.split("\n\n")[0])
    p.add_argument("--pred", type=Path, required=True, help="folder of <id>.png test predictions")
    p.add_argument("--data", type=Path, required=True, help="VOC2012 folder with the test images and test.txt")
    p.add_argument("--out", type=Path, default=Path("voc2012_test_submission.tar.gz"))
    p.add_argument("--comp", default="comp6", choices=("comp5", "comp6"))
    args = p.parse_args(argv)

    def body() -> int:
        ids = pack(args.pred, args.data, args.out, comp=args.comp)
        print(f"{len(ids)} test prediction(s) -> {args.out} (results/VOC2012/Segmentation/{args.comp}_test_cls/)")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
