"""Every shipped stage-1 config (``configs/stage1/*.yaml``) runs: embed, train, generate, in process.

Each file keeps what it says about the method (weak labels, prompts, loss and formulas, superpixels,
CRF, precision, training settings) and gets test-sized parts in place of the heavy ones: the reduced
seeded-random model of its backend (the ``model.kwargs`` of ``configs/stage1/tiny_random*.yaml``; the
proxy SAM at reduced size, from a seeded checkpoint file written here), a few small synthetic images
with the labels it reads (VOC layout, the nested domain, or a dataset description), two optimizer
steps, the CPU. A new file under ``configs/stage1`` is covered by the glob.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable, Dict, Sequence

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from stage1_pseudolabel.pipeline import train as train_module
from stage1_pseudolabel.pipeline.config import Stage1Config, build_config, load_yaml_config
from stage1_pseudolabel.pipeline.embed import run_embed
from stage1_pseudolabel.pipeline.generate import run_generate
from stage1_pseudolabel.pipeline.prepare import open_dataset
from stage1_pseudolabel.pipeline.train import run_train
from stage1_pseudolabel.sam.backends.variants import variant
from stage1_pseudolabel.sam.proxy import build_proxy_sam
from wsss.core.frames import voc_box_to_pixel
from wsss.core.synthetic import write_dataset
from wsss.core.synthetic.nested import write_nested_dataset
from wsss.core.weak_labels.annotation import select_weak_labels
from wsss.core.weak_labels.classes import IGNORE_INDEX, VOC_CLASSES

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs" / "stage1").glob("*.yaml"))
NUM_IMAGES = 2
MAX_STEPS = 2
#: small scenes: the encoders resize every image to their input size, so only the CPU work per pixel
#: (superpixels, CRF, PNGs) depends on it
SIZE_RANGE = (64, 80)
#: the proxy SAM at the tiny configs' decoder size (64 channels, 128-wide MLP), a 64 x 64 low-res frame
PROXY_KWARGS = dict(image_size=128, encoder_stride=8, encoder_widths=[8, 16, 32], encoder_blocks=1,
                    prompt_embed_dim=64, decoder_mlp_dim=128, iou_head_hidden_dim=32)


def tiny_kwargs() -> Dict[str, Dict[str, Any]]:
    """``{backend: model.kwargs}`` of the shipped tiny random-weight configs (``tiny_random*.yaml``)."""
    out = {}
    for path in sorted((REPO / "configs" / "stage1").glob("tiny_random*.yaml")):
        model = load_yaml_config(path)["model"]
        out[variant(model["type"]).backend] = model["kwargs"]
    return out


def model_overrides(*, model_type: str, proxy_checkpoint: Path) -> Dict[str, Any]:
    """The ``model`` section's test-size keys for ``model_type``: its backend's reduced seeded-random model
    (the type is kept), or the reduced proxy SAM from its checkpoint file."""
    if variant(model_type).config == "proxy":
        return {"checkpoint": str(proxy_checkpoint), "kwargs": {"_delete_": True, **PROXY_KWARGS}}
    return {"checkpoint": "none", "kwargs": {"_delete_": True, **tiny_kwargs()[variant(model_type).backend]}}


def nested_inner_label(weak_labels: Sequence[str]) -> str:
    """How the nested scenes annotate the inner object for a run reading ``weak_labels``: by its tag, by
    its click (no box), or by a box."""
    if "tags" in weak_labels:
        return "tag"
    return "click" if "points" in weak_labels else "box"


def write_coco_description(*, description: Path, source: Path, out: Path) -> Path:
    """The shipped description ``description`` with its root moved to ``out``: the synthetic VOC-layout
    scenes at ``source`` written where it expects its images and its COCO JSON (boxes, and each box as
    the object's polygon); returns the new description's path."""
    values = yaml.safe_load(description.read_text())
    values["root"] = str(out)
    files = values["sources"] + ([values["ground_truth"]] if values.get("ground_truth") else [])
    formats = {entry["format"] for entry in files}
    assert formats == {"coco"}, f"{description}: no test writer for the formats {sorted(formats - {'coco'})}"
    images = out / values["images"]
    images.mkdir(parents=True)
    doc = {"images": [], "annotations": [],
           "categories": [{"id": k, "name": name} for k, name in enumerate(VOC_CLASSES) if k]}
    for n, jpeg in enumerate(sorted((source / "JPEGImages").glob("*.jpg")), start=1):
        shutil.copy(jpeg, images / jpeg.name)
        xml = ET.parse(source / "Annotations" / f"{jpeg.stem}.xml").getroot()
        size = xml.find("size")
        doc["images"].append({"id": n, "file_name": jpeg.name, "height": int(size.findtext("height")),
                              "width": int(size.findtext("width"))})
        for obj in xml.findall("object"):
            b = obj.find("bndbox")
            x0, y0, x1, y1 = voc_box_to_pixel(*(float(b.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")))
            doc["annotations"].append({
                "id": len(doc["annotations"]) + 1, "image_id": n, "iscrowd": 0,
                "category_id": VOC_CLASSES.index(obj.findtext("name").strip()), "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": (x1 - x0) * (y1 - y0), "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]]})
    for entry in files:
        (out / entry["path"]).parent.mkdir(parents=True, exist_ok=True)
        (out / entry["path"]).write_text(json.dumps(doc))
    path = out / "description.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> Callable[[str], Path]:
    """``kind -> dataset path``, each written once for the module on first use: ``voc`` (synthetic
    VOC layout: boxes, scribbles, clicks), ``nested_box`` / ``nested_click`` / ``nested_tag``."""
    root = tmp_path_factory.mktemp("datasets")
    made: Dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in made:
            if kind == "voc":
                made[kind] = write_dataset(root / kind, domain="target", num_train=NUM_IMAGES, num_val=0, seed=0,
                                           size_range=SIZE_RANGE)
            else:
                made[kind] = write_nested_dataset(root / kind, num_train=NUM_IMAGES, seed=0, size_range=SIZE_RANGE,
                                                  inner_label=kind.split("_", 1)[1])
        return made[kind]

    return get


@pytest.fixture(scope="module")
def proxy_checkpoint(tmp_path_factory) -> Path:
    """A seeded random proxy SAM at :data:`PROXY_KWARGS`, saved as ``make proxy-sam`` saves its file."""
    path = tmp_path_factory.mktemp("proxy") / "proxy_sam.pth"
    torch.manual_seed(0)
    torch.save(build_proxy_sam(**PROXY_KWARGS).state_dict(), path)
    return path


def data_overrides(*, name: str, shipped: Stage1Config, datasets: Callable[[str], Path],
                   tmp_path: Path) -> Dict[str, Any]:
    """The ``data`` keys that point the config at a small dataset with the labels it reads (only
    ``root``, ``dataset``, ``split`` and ``max_images``: the rest of the section is the file's)."""
    data: Dict[str, Any] = {"max_images": NUM_IMAGES, "split": "train"}
    if shipped.data.dataset:
        data["dataset"] = str(write_coco_description(description=REPO / shipped.data.dataset, source=datasets("voc"),
                                                     out=tmp_path / "described"))
    elif name.startswith("nested"):  # the nested domain's configs: their formulas name its two classes
        data["root"] = str(datasets("nested_" + nested_inner_label(shipped.data.weak_labels)))
    else:
        data["root"] = str(datasets("voc"))
    return data


def sized_for_tests(config: Path, *, datasets: Callable[[str], Path], proxy_checkpoint: Path,
                    work: Path) -> Stage1Config:
    """``config`` with test-sized data, model, steps and workers; everything about the method is the file's."""
    shipped = build_config(config_file=str(config))
    cfg = build_config(config_file=str(config), overrides={
        "work_dir": str(work / "work"),
        # every config on the CPU, voc_box_scribble_gpu's "cuda" too; its bf16 autocast and sdpa
        # attention run there as they are
        "device": "cpu",
        "data": data_overrides(name=config.stem, shipped=shipped, datasets=datasets, tmp_path=work),
        "model": model_overrides(model_type=shipped.model.type, proxy_checkpoint=proxy_checkpoint),
        "train": {"max_steps": MAX_STEPS, "prepare_workers": 0},  # worker processes cost more than 2 images
        "generate": {"crf_workers": 0},
    })
    for section in ("loss", "prompts", "superpixels", "crf"):
        assert cfg.get(section) == shipped.get(section), section
    for key in ("data.weak_labels", "data.no_label_policy", "model.type", "model.precision", "model.attention",
                "train.epochs", "train.batch_size", "train.lr", "train.warmup_steps", "train.heads"):
        assert cfg.get(key) == shipped.get(key), key
    return cfg


def file_digests(folder: Path) -> Dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def train_and_check(cfg: Stage1Config, *, monkeypatch) -> None:
    """Run train; the steps' losses are finite, the file's formulas are in the loss, and only mask-decoder
    parameters moved (the run's own model, before and after, and the decoder file it wrote)."""
    captured = {}
    real_load_model = train_module.load_model

    def spy(*args, **kwargs):
        model, key = real_load_model(*args, **kwargs)
        captured["model"], captured["initial"] = model, {k: v.clone() for k, v in model.state_dict().items()}
        return model, key

    monkeypatch.setattr(train_module, "load_model", spy)
    summary = run_train(cfg, progress=False)
    steps = min(MAX_STEPS, math.ceil(NUM_IMAGES / cfg.train.batch_size) * cfg.train.epochs)
    assert summary["steps"] == steps and summary["images"] == NUM_IMAGES
    assert len(summary["losses"]) == steps and all(math.isfinite(v) for v in summary["losses"]), summary["losses"]
    logged = [json.loads(line) for line in cfg.train_log.read_text().splitlines()]
    assert [r["step"] for r in logged] == list(range(1, steps + 1))
    for record in logged:
        assert set(cfg.constraints.formulas) <= set(record["truth"]) <= set(cfg.constraints.active), record["truth"]
        assert all(0 < t <= 1 for t in record["truth"].values()), record["truth"]

    model, initial = captured["model"], captured["initial"]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("mask_decoder.") for n in trainable), sorted(trainable)
    state = model.state_dict()
    assert any(not torch.equal(state[n], initial[n]) for n in trainable)
    assert [n for n in state if n not in trainable and not torch.equal(state[n], initial[n])] == []
    saved = torch.load(cfg.decoder_path(), map_location="cpu", weights_only=True)["mask_decoder"]
    assert {"mask_decoder." + k for k in saved} == {n for n in state if n.startswith("mask_decoder.")}
    assert all(torch.equal(v, state["mask_decoder." + k]) for k, v in saved.items())


def check_masks(cfg: Stage1Config, *, output_dir: Path) -> None:
    """One PNG per image, the image's size, labels ``0..C`` or 255, and a foreground label only where
    the image's weak labels name that class."""
    dataset = open_dataset(cfg)
    masks = {p.stem: p for p in output_dir.glob("*.png")}
    assert sorted(masks) == sorted(dataset.ids)
    for image_id in dataset.ids:
        ann = select_weak_labels(dataset.load(image_id), cfg.data.weak_labels)
        mask = np.asarray(Image.open(masks[image_id]))
        assert mask.shape == (ann.height, ann.width)
        values = set(np.unique(mask).tolist())
        assert values <= set(range(dataset.num_foreground + 1)) | {IGNORE_INDEX}, values
        named = set(ann.labelled_classes().tolist()) | set([] if ann.tags is None else ann.tags.tolist())
        assert values - {0, IGNORE_INDEX} <= named, (image_id, values, named)


@pytest.mark.parametrize("config", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_runs(config, datasets, proxy_checkpoint, tmp_path, monkeypatch):
    cfg = sized_for_tests(config, datasets=datasets, proxy_checkpoint=proxy_checkpoint, work=tmp_path)
    embed = run_embed(cfg, progress=False)
    assert embed["embedded"] == NUM_IMAGES and not embed["problems"]
    embeddings = file_digests(cfg.cache_dir)
    train_and_check(cfg, monkeypatch=monkeypatch)
    out = run_generate(cfg, progress=False)
    assert not out["problems"] and out["written"] == NUM_IMAGES
    assert file_digests(cfg.cache_dir) == embeddings  # generate decodes embed's features, unchanged
    check_masks(cfg, output_dir=Path(out["output_dir"]))
