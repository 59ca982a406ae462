"""Image-level tags: the reader, the two dataset kinds, tag-only (prompt-less) objects and their
constraints, and stage 1 end to end on tags.

The decoder side (a prompt-less object's logits equal the official predictor's ``predict()`` with no
prompt, for each backend) is in ``tests/stage1/test_backends.py``.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from stage1_pseudolabel.pipeline.config import build_config
from stage1_pseudolabel.sam.prompts import build_prompts, image_objects
from wsss.core.frames import SamFrame
from wsss.core.weak_labels.annotation import ImageAnnotation, select_weak_labels
from wsss.core.weak_labels.classes import VOC_CLASSES
from wsss.core.weak_labels.errors import MalformedAnnotationError, UnknownClassError, WeakLabelWarning
from wsss.core.weak_labels.tags import read_tags_file

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO / "configs" / "stage1" / "tiny_random.yaml"
TAGS_FORMULA = "(forall k in tagged: exists p in pixels: k(p)) and (forall k in untagged: forall p in pixels: not k(p))"


# -- reader -------------------------------------------------------------------------------------------
def test_tag_file_names_classes(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("# tags of a\nbird\n\n  aeroplane  \nbird  # twice is once\n")
    assert read_tags_file(path, classes=VOC_CLASSES).tolist() == [1, 3]
    path.write_text("bird\nbackground\n")
    with pytest.raises(UnknownClassError, match=r"a\.txt: line 2: 'background' is not a class; expected one of aeroplane, "):
        read_tags_file(path, classes=VOC_CLASSES)
    path.write_text("brid\n")
    with pytest.raises(UnknownClassError, match=r"line 1: 'brid'.*tvmonitor"):
        read_tags_file(path, classes=VOC_CLASSES)
    with pytest.warns(WeakLabelWarning, match=r"a\.txt: tag\(s\) 'brid' are not classes and were ignored"):
        assert read_tags_file(path, classes=VOC_CLASSES, unknown_classes="ignore").tolist() == []
    path.write_bytes(b"bird\n\xff\xfe\n")
    with pytest.raises(MalformedAnnotationError, match=r"a\.txt: not UTF-8"):
        read_tags_file(path, classes=VOC_CLASSES)


def _annotation(**kw) -> ImageAnnotation:
    values = dict(image_id="img", image_path=Path("none.jpg"), height=60, width=80,
                  boxes=np.array([[5, 10, 36, 40]], np.float32), box_classes=np.array([3]))
    values.update(kw)
    return ImageAnnotation(**values)


def test_tags_are_selected_by_name_and_default_to_the_labelled_classes():
    scribbles = np.full((60, 80), 255, np.uint8)
    scribbles[50, 60:70] = 8
    ann = _annotation(scribbles=scribbles, points=np.array([[3, 3]], np.float32), point_classes=np.array([12]))
    assert ann.tags is None
    assert select_weak_labels(ann, ["boxes"]).tags is None
    # no tag file: tagged with what the boxes, scribbles and clicks name (before they are dropped)
    assert select_weak_labels(ann, ["tags"]).tags.tolist() == [3, 8, 12]
    assert select_weak_labels(ann, ["tags"]).num_objects == 0
    tagged = _annotation(tags=np.array([15, 3, 15]))
    assert tagged.tags.tolist() == [3, 15] and tagged.has_weak_labels
    assert select_weak_labels(tagged, ["boxes", "tags"]).tags.tolist() == [3, 15]
    assert select_weak_labels(tagged, ["boxes"]).tags is None
    assert _annotation(boxes=np.zeros((0, 4)), box_classes=np.zeros(0), tags=np.array([2])).has_weak_labels


def test_voc_layout_and_description_read_tag_files(voc_root, tmp_path):
    """``tags/<id>.txt`` in a VOC layout and a ``{format: tags}`` source of a description give the
    same tags; an image without a file has none (None), and a bad file is named in the error."""
    import shutil

    from wsss.core.datasets import DescribedDataset
    from wsss.core.datasets import voc_dataset
    from wsss.core.weak_labels.voc import read_id_list

    ids = read_id_list(voc_root / "ImageSets" / "Segmentation" / "train.txt")[:2]
    root = tmp_path / "voc"
    for sub in ("JPEGImages", "Annotations"):
        (root / sub).mkdir(parents=True)
        for i in ids:
            src = next((voc_root / sub).glob(f"{i}.*"))
            shutil.copy(src, root / sub / src.name)
    (root / "tags").mkdir()
    (root / "tags" / f"{ids[0]}.txt").write_text("person\ndog\n")
    voc = voc_dataset(root, ids=ids)
    assert voc.load(ids[0]).tags.tolist() == [12, 15]
    assert voc.load(ids[1]).tags is None
    description = tmp_path / "d.yaml"
    description.write_text(yaml.safe_dump({"root": str(root), "images": "JPEGImages", "classes": list(VOC_CLASSES),
                                           "sources": [{"format": "voc_xml", "path": "Annotations"},
                                                       {"format": "tags", "path": "tags"}]}))
    described = DescribedDataset(description, ids=ids)
    assert described.load(ids[0]).tags.tolist() == [12, 15] and described.load(ids[1]).tags is None
    (root / "tags" / f"{ids[1]}.txt").write_text("unicorn\n")
    with pytest.raises(UnknownClassError, match=rf"tags/{ids[1]}\.txt: line 1: 'unicorn'"):
        described.load(ids[1])


# -- objects and prompts --------------------------------------------------------------------------------
def test_a_tag_without_other_labels_is_a_promptless_object(caplog):
    frame = SamFrame(height=60, width=80, encoder_size=256, lowres=64)
    ann = _annotation(points=np.array([[60, 50]], np.float32), point_classes=np.array([8]), tags=np.array([3, 8, 15]))
    objects = image_objects(ann)
    assert objects.classes.tolist() == [3, 8, 15]
    assert objects.boxed.tolist() == [True, False, False] and objects.promptless.tolist() == [False, False, True]
    assert objects.boxes[2].tolist() == [0, 0, 80, 60]  # its region: the image
    prompts = build_prompts(ann, objects, frame, mode="both")
    groups = prompts.groups()
    assert [idx.tolist() for idx, _ in groups] == [[0], [1], [2]]
    tag_group = groups[2][1]
    assert tag_group.boxes is None and tag_group.point_coords is None and tag_group.num_objects == 1
    assert (prompts.point_labels[2] == -1).all()  # no point of its own in the image's prompt arrays
    assert image_objects(ann, tag_objects=False).classes.tolist() == [3, 8]
    # tags that all have a box: nothing added
    assert image_objects(_annotation(tags=np.array([3]))).classes.tolist() == [3]
    # two tag-only classes cannot be told apart by a prompt-less decoder: left out, with a warning
    with caplog.at_level(logging.WARNING):
        two = image_objects(_annotation(tags=np.array([3, 12, 15])))
    assert two.classes.tolist() == [3] and "cannot tell them apart" in caplog.text and "img" in caplog.text
    only = _annotation(boxes=np.zeros((0, 4)), box_classes=np.zeros(0), tags=np.array([15]))
    objects = image_objects(only)
    prompts = build_prompts(only, objects, frame, mode="box")
    assert objects.promptless.tolist() == [True] and prompts.num_objects == 1
    assert len(prompts.groups()) == 1 and prompts.boxes is None and prompts.point_coords is None


def test_pipeline_passes_the_tagged_channels_to_the_formulas(voc_root, tmp_path):
    """compile_constraints gives the tags formula the image's tagged channels: its log-truth equals the
    probability-space product (every tagged class somewhere, no untagged one anywhere)."""
    from stage1_pseudolabel.pipeline.prepare import ImageInputs, compile_constraints, open_dataset, prepare_image

    cfg = build_config(config_file=str(TINY_CONFIG),
                       overrides={"data.root": str(voc_root), "data.split": "train", "work_dir": str(tmp_path)},
                       cfg_options=['data.weak_labels=["boxes", "tags"]',
                                    f"loss={json.dumps({'tags': {'weight': 1.0, 'formula': TAGS_FORMULA}})}"])
    dataset = open_dataset(cfg)
    ann = dataset.load(dataset.ids[0])
    boxed = sorted(set(ann.box_classes.tolist()))
    extra = next(c for c in (3, 8, 12) if c not in boxed)
    # the image is tagged with its boxes' classes but one, and a class without a box
    ann.tags = np.array(boxed[1:] + [extra])
    inputs = ImageInputs.from_config(cfg)
    prepared = prepare_image(ann, inputs=inputs, encoder_size=256, lowres=64)
    assert prepared.classes.tolist() == sorted(boxed + [extra]) and prepared.objects.promptless[-1]
    compiled = compile_constraints(ann, prepared, inputs=inputs)
    assert "tags" in compiled.constraints
    torch.manual_seed(0)
    log_probs = torch.log_softmax(torch.randn(prepared.num_channels, 64, 64) * 3, dim=0)
    got = compiled.truths(log_probs)["tags"]
    valid = prepared.frame.valid_lowres()
    p = log_probs.exp().clamp(1e-6, 1 - 1e-6).double()
    expected = 0.0
    for ch, cls in enumerate(prepared.classes.tolist(), start=1):
        pk = p[ch][valid]
        if cls in ann.tags:
            expected += math.log(1 - float(torch.prod(1 - pk)))
        else:
            expected += float(torch.log(1 - pk).sum())
    assert abs(float(got) - expected) <= 1e-4 * abs(expected) + 1e-6


def test_stage1_trains_and_generates_on_tags(tmp_path):
    """Stage 1 end to end (tiny random SAM) on nested scenes whose inner object only has a tag, and on
    the same scenes tagged with the inner class alone (image-level labels, no box at all): every image
    is trained on, the log shows the tags constraint, and the masks are written."""
    from stage1_pseudolabel.pipeline.embed import run_embed
    from stage1_pseudolabel.pipeline.generate import run_generate
    from stage1_pseudolabel.pipeline.train import run_train
    from wsss.core.synthetic.nested import write_nested_dataset

    root = write_nested_dataset(tmp_path / "nested", num_train=3, seed=5, inner_label="tag", size_range=(90, 110))
    loss = {"tags": {"weight": 1.0, "formula": TAGS_FORMULA}}
    for kinds, tag_text in ((["boxes", "tags"], None), (["tags"], "bird\n")):
        if tag_text:
            for f in (root / "tags").glob("*.txt"):
                f.write_text(tag_text)
        work = tmp_path / "_".join(kinds)
        cfg = build_config(config_file=str(TINY_CONFIG), overrides={"data.root": str(root), "work_dir": str(work)},
                           cfg_options=[f"data.weak_labels={json.dumps(kinds)}", "train.epochs=1", "train.batch_size=3",
                                        f"loss={json.dumps(loss)}", 'superpixels={"n_segments": 30}'])
        assert run_embed(cfg, progress=False)["embedded"] == 3
        summary = run_train(cfg, progress=False)
        assert summary["images"] == 3 and not any(summary["skipped"].values())
        logged = [json.loads(line) for line in (work / "train_log.jsonl").read_text().splitlines()]
        assert "tags" in logged[-1]["truth"]
        out = run_generate(cfg, progress=False)
        assert not out["problems"] and len(list(Path(out["output_dir"]).glob("*.png"))) == 3
