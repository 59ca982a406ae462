"""Shared fixtures. The real VOC slice is found through one setting: WSSS_VOC_ROOT."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VOC_ROOT = REPO_ROOT.parent / "shared" / "data" / "voc2012"


def voc_root_path() -> Path:
    return Path(os.environ.get("WSSS_VOC_ROOT", DEFAULT_VOC_ROOT))


@pytest.fixture(scope="session")
def voc_root() -> Path:
    root = voc_root_path()
    if not (root / "JPEGImages").is_dir():
        message = (
            f"real VOC slice not found at {root}: set WSSS_VOC_ROOT to a VOC2012-layout folder "
            "(JPEGImages, Annotations, SegmentationClass, scribbles, points), "
            "or WSSS_SKIP_REAL_DATA=1 to skip the tests that need it"
        )
        if os.environ.get("WSSS_SKIP_REAL_DATA") == "1":
            pytest.skip(message)
        pytest.fail(message)
    return root


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tests use small tensors on a 2-core machine: one intra-op thread is faster and deterministic."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="session")
def _segment_anything_importable():
    """Tests compare with ``segment_anything``'s own classes and predictor (the official reference), so
    they import it directly: make it importable as the toolkit's entry points do (torchvision stand-in
    where torchvision is missing). Importing the toolkit itself does not (tests/test_layers.py)."""
    from stage1_pseudolabel.sam.modeling import sam_modeling

    sam_modeling()


#: the tests' reduced random-weight SAM (configs/stage1/tiny_random.yaml)
TINY_CONFIG = REPO_ROOT / "configs" / "stage1" / "tiny_random.yaml"


def tiny_config(root: Path, work: Path, **sections):
    """The tiny stage-1 config on the VOC-layout folder ``root``, writing to ``work``, with ``sections``
    merged over it (``train={"epochs": 1}``, or dotted keys)."""
    from stage1_pseudolabel.pipeline.config import build_config

    cfg = build_config(config_file=str(TINY_CONFIG), overrides={"data.root": str(root), "work_dir": str(work)})
    return cfg.updated(**sections)


def link_voc_subset(voc_root: Path, root: Path, counts, subdirs=("JPEGImages", "SegmentationClass")) -> dict:
    """A VOC-layout folder at ``root`` with the first ``counts[split]`` ids of each split of the real
    slice (folders linked, not copied); returns ``{split: ids}``."""
    for sub in subdirs:
        (root / sub).symlink_to(voc_root / sub, target_is_directory=True)
    lists = root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    ids = {}
    for split, n in counts.items():
        ids[split] = (voc_root / "ImageSets/Segmentation" / f"{split}.txt").read_text().split()[:n]
        (lists / f"{split}.txt").write_text("\n".join(ids[split]) + "\n")
    return ids
