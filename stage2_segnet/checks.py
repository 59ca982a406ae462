"""Checks run before training: pseudo-masks against the ground truth, and local checkpoint files.

* :func:`check_pseudo_masks`: every image of the training list has a pseudo-mask, readable, of the
  image's size, with ids in ``0..20`` / 255 (the reading and value check are
  :func:`wsss.core.masks.validate_mask_dir`'s), and a palette PNG uses the ground truth's
  palette for those ids (so that a colour means the same class in both folders).
* :func:`check_pretrained`: the backbone checkpoints a config initialises from exist locally;
  nothing is downloaded at run time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np
from PIL import Image

from wsss.core.masks import validate_mask_dir
from wsss.core.weak_labels.classes import IGNORE_INDEX, voc_palette
from wsss.core.weak_labels.errors import FileProblem, InvalidMaskError, PathLike
from wsss.core.weak_labels.images import image_size

NUM_FOREGROUND = 20  # foreground classes of VOC; ids are 0..20 and 255

# Where to get the ImageNet checkpoints the configs name (put them in data/checkpoints/).
CHECKPOINT_SOURCES = {
    "resnet50_v1c-2cccc1ad.pth": "https://download.openmmlab.com/pretrain/third_party/resnet50_v1c-2cccc1ad.pth",
    "resnet101_v1c-e67eebb6.pth": "https://download.openmmlab.com/pretrain/third_party/resnet101_v1c-e67eebb6.pth",
    "resnet50-0676ba61.pth": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "swin_small_patch4_window7_224_20220317-7ba6d6dd.pth": (
        "https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/swin/"
        "swin_small_patch4_window7_224_20220317-7ba6d6dd.pth"
    ),
}


class PseudoMaskError(InvalidMaskError):
    """The pseudo-mask folder does not fit the training list or the ground truth's convention."""


def reference_palette(gt_dir: PathLike, ids: Optional[Sequence[str]] = None, *,
                      num_foreground: int = NUM_FOREGROUND) -> np.ndarray:
    """``uint8 [C + 1, 3]`` colours of ids 0..C in the ground truth (its first palette PNG), else VOC's."""
    gt_dir = Path(gt_dir)
    paths = [gt_dir / f"{i}.png" for i in ids] if ids else sorted(gt_dir.glob("*.png"))
    for path in paths[:20]:
        if path.is_file():
            with Image.open(path) as img:
                if img.mode == "P":
                    pal = np.asarray(img.getpalette(), np.uint8).reshape(-1, 3)
                    if len(pal) > num_foreground:
                        return pal[: num_foreground + 1]
    return voc_palette()[: num_foreground + 1]


def palette_problem(path: Path, reference: np.ndarray, *, num_foreground: int = NUM_FOREGROUND) -> Optional[str]:
    """A message if ``path`` is a palette PNG whose colours for the ids it uses differ from ``reference``."""
    with Image.open(path) as img:
        if img.mode != "P":
            return None  # grey label maps carry ids only; RGB ones were mapped through VOC's palette
        pal = np.asarray(img.getpalette(), np.uint8).reshape(-1, 3)
        used = np.unique(np.asarray(img))
    used = used[(used != IGNORE_INDEX) & (used <= num_foreground)]
    wrong = [int(v) for v in used if v >= len(pal) or not np.array_equal(pal[v], reference[v])]
    if not wrong:
        return None
    shown = ", ".join(f"{v} is {tuple(int(c) for c in pal[v]) if v < len(pal) else 'missing'} "
                      f"(ground truth {tuple(int(c) for c in reference[v])})" for v in wrong[:3])
    return f"palette differs from the ground truth's for ids it uses: {shown}"


def check_pseudo_masks(
    mask_dir: PathLike,
    ids: Sequence[str],
    *,
    img_dir: Optional[PathLike] = None,
    gt_dir: Optional[PathLike] = None,
    img_suffix: str = ".jpg",
    num_foreground: int = NUM_FOREGROUND,
    palette: Optional[np.ndarray] = None,
    image_paths: Optional[Dict[str, PathLike]] = None,
) -> List[FileProblem]:
    """Problems of the pseudo-mask folder for the training ids (empty when all is well).

    Args:
        mask_dir: folder of ``<id>.png`` pseudo-masks written by stage 1.
        ids: the training list; each needs a mask.
        img_dir: if given, each mask must have its image's size (header read only).
        gt_dir: the real ``SegmentationClass``; its palette is the reference for palette masks.
        num_foreground: classes ``C`` (ids ``0..C`` / 255); 20 for VOC, a description's otherwise.
        palette: ``[C + 1, 3]`` reference colours (a dataset description's); default: ``gt_dir``'s.
        image_paths: ``{id: [image, orientation]}`` (a described dataset's index); default
            ``img_dir/<id><img_suffix>`` as viewers show it.
    """
    mask_dir = Path(mask_dir)
    if not mask_dir.is_dir():
        return [FileProblem(image_id="*", path=mask_dir, kind="MissingFileError",
                            message=f"{mask_dir}: pseudo-mask folder not found (run stage 1 first)")]
    problems = validate_mask_dir(mask_dir, ids=ids, num_foreground=num_foreground)
    bad = {p.image_id for p in problems}
    if palette is not None:
        reference = np.asarray(palette, np.uint8).reshape(-1, 3)[: num_foreground + 1]
    elif gt_dir is not None:
        reference = reference_palette(gt_dir, num_foreground=num_foreground)
    else:
        reference = voc_palette()[: num_foreground + 1]
    for image_id in ids:
        if image_id in bad:
            continue
        path = mask_dir / f"{image_id}.png"
        message = palette_problem(path, reference, num_foreground=num_foreground)
        if message is None and (img_dir is not None or image_paths is not None):
            img_path, orientation = Path(img_dir or ".") / f"{image_id}{img_suffix}", "exif"
            if image_paths and image_id in image_paths:
                img_path, orientation = Path(image_paths[image_id][0]), image_paths[image_id][1]
            if img_path.is_file():
                with Image.open(path) as m:
                    mw, mh = m.size
                h, w = image_size(img_path, orientation=orientation)
                if (mh, mw) != (h, w):
                    message = f"mask is {mw}x{mh} (WxH) but the image {img_path} is {w}x{h}"
        if message is not None:
            problems.append(FileProblem(image_id=image_id, path=path, kind="PseudoMaskError",
                                        message=f"{path}: {message}"))
    return problems


def raise_on_problems(problems: Sequence[FileProblem], what: str, shown: int = 10) -> None:
    """Raise :class:`PseudoMaskError` listing the first ``shown`` problems (each names its file)."""
    if not problems:
        return
    lines = "\n  ".join(str(p) for p in problems[:shown])
    more = f"\n  ... and {len(problems) - shown} more" if len(problems) > shown else ""
    raise PseudoMaskError(None, f"{len(problems)} problem(s) in {what}:\n  {lines}{more}")


def _walk(node: Any) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _walk(value)


def pretrained_paths(model_cfg: dict) -> List[str]:
    """Checkpoint paths a model config initialises from (``pretrained=`` and ``init_cfg`` Pretrained)."""
    paths = []
    for node in _walk(model_cfg):
        if isinstance(node.get("pretrained"), str):
            paths.append(node["pretrained"])
        init = node.get("init_cfg")
        for item in init if isinstance(init, (list, tuple)) else [init]:
            if isinstance(item, dict) and item.get("type") == "Pretrained" and item.get("checkpoint"):
                paths.append(item["checkpoint"])
    return list(dict.fromkeys(paths))


def check_pretrained(model_cfg: dict) -> None:
    """Raise ``FileNotFoundError`` naming each missing backbone checkpoint and where to get it."""
    missing = []
    for path in pretrained_paths(model_cfg):
        if "://" in path:
            missing.append(f"{path}: a URL / model-zoo name; this toolkit does not download at run time. "
                           f"Download the file to data/checkpoints/ and set its local path in the config.")
        elif not Path(path).expanduser().is_file():
            name = Path(path).name
            url = CHECKPOINT_SOURCES.get(name)
            hint = f"download it with: mkdir -p {Path(path).parent} && wget -O {path} {url}" if url else \
                "the config's comment names the file and where it is published; put it there"
            missing.append(f"{Path(path).resolve()} not found ({hint})")
    if missing:
        raise FileNotFoundError(
            "backbone initialisation checkpoint missing:\n  " + "\n  ".join(missing)
            + "\n(or train from scratch with --cfg-options model.pretrained=None / "
            "model.backbone.init_cfg=None)"
        )
