"""Synthetic scenes: determinism, exact and consistent labels, variety, and two distinct domains."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest

from wsss.core.masks import read_mask
from wsss.core.synthetic import DEFAULT_CLASSES, render_scene, write_dataset
from wsss.core.synthetic.cli import main as synthetic_main
from wsss.core.datasets import voc_dataset
from wsss.core.weak_labels import parse_voc_xml, read_image, read_points_json


def _scenes(domain, n, seed=0, size=(192, 208)):
    return [render_scene(seed=seed, domain=domain, index=i, height=size[0], width=size[1]) for i in range(n)]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return {d: write_dataset(root / d, domain=d, num_train=10, num_val=4, seed=5) for d in ("source", "target")}


def test_deterministic_per_seed(tmp_path):
    a = render_scene(seed=3, domain="target", index=4, height=170, width=200)
    b = render_scene(seed=3, domain="target", index=4, height=170, width=200)
    for name in ("image", "label", "instances", "scribbles", "points", "point_classes"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.objects == b.objects
    c = render_scene(seed=4, domain="target", index=4, height=170, width=200)
    assert not np.array_equal(a.image, c.image)
    # Files: same seed, same bytes; and scene i does not depend on how many scenes are written.
    one = write_dataset(tmp_path / "one", domain="source", num_train=3, num_val=1, seed=9)
    two = write_dataset(tmp_path / "two", domain="source", num_train=5, num_val=1, seed=9)
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file() and "ImageSets" not in str(p)
                   and p.name != "synthetic.json")
    assert len(files) == 4 * 6
    for rel in files:
        assert (one / rel).read_bytes() == (two / rel).read_bytes(), rel


def test_ground_truth_boxes_scribbles_and_clicks_agree(datasets):
    for domain, root in datasets.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a clean dataset: no clipping, no dropped clicks
            annotations = voc_dataset(root, split="train").load_all().annotations + \
                voc_dataset(root, split="val").load_all().annotations
        assert len(annotations) == 14
        for a in annotations:
            gt = read_mask(a.gt_path, height=a.height, width=a.width)
            inst = read_mask(root / "SegmentationObject" / f"{a.image_id}.png", num_foreground=254)
            assert read_image(a.image_path).shape == (a.height, a.width, 3)
            assert 160 <= a.height <= 240 and 160 <= a.width <= 240
            assert set(np.unique(gt)) <= {0, *DEFAULT_CLASSES}  # exact GT: no void
            np.testing.assert_array_equal(gt > 0, inst > 0)
            assert inst.max() == a.num_objects >= 1
            for k, ((x0, y0, x1, y1), cls) in enumerate(zip(a.boxes.astype(int), a.box_classes), start=1):
                ys, xs = np.nonzero(inst == k)
                # Box is tight around the instance's visible pixels, and carries its class.
                assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), (a.image_id, k)
                assert (gt[ys, xs] == cls).all()
                stroke = (inst == k) & (a.scribbles != 255)
                assert stroke.any(), (a.image_id, k)  # every object has a scribble
            labelled = a.scribbles != 255
            np.testing.assert_array_equal(a.scribbles[labelled], gt[labelled])  # strokes inside their region
            assert (a.scribbles == 0).any()  # background strokes
            xy = np.round(a.points).astype(int)
            np.testing.assert_array_equal(gt[xy[:, 1], xy[:, 0]], a.point_classes)  # clicks on their class
            assert (a.point_classes > 0).sum() == a.num_objects and (a.point_classes == 0).any()
            ranks = read_points_json(root / "points" / f"{a.image_id}.json").ranks
            assert sorted(ranks[a.point_classes == a.box_classes[0]].tolist())[-1] == \
                int((a.box_classes == a.box_classes[0]).sum())
            xml = parse_voc_xml(root / "Annotations" / f"{a.image_id}.xml")
            assert xml.size == (a.height, a.width)


def _touching(inst):
    """True if two different instances share an edge."""
    right = (inst[:, 1:] != inst[:, :-1]) & (inst[:, 1:] > 0) & (inst[:, :-1] > 0)
    down = (inst[1:, :] != inst[:-1, :]) & (inst[1:, :] > 0) & (inst[:-1, :] > 0)
    return bool(right.any() or down.any())


@pytest.mark.parametrize("domain", ["source", "target"])
def test_scenes_are_varied(domain):
    scenes = _scenes(domain, 40)
    counts = [len(s.objects) for s in scenes]
    assert max(counts) >= 3 and np.mean(counts) >= 1.8
    assert sum(len({o.class_index for o in s.objects}) < len(s.objects) for s in scenes) >= 4  # same-class instances
    assert sum(_touching(s.instances) for s in scenes) >= 5  # touching / occluding objects
    assert {o.class_index for s in scenes for o in s.objects} == set(DEFAULT_CLASSES)


def _object_stats(scenes):
    sat, detail, bg_detail, mean_rgb, classes = [], [], [], [], []
    for s in scenes:
        hsv = cv2.cvtColor(s.image, cv2.COLOR_RGB2HSV)
        grey = cv2.cvtColor(s.image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        lap = np.abs(cv2.Laplacian(cv2.GaussianBlur(grey, (0, 0), 1.0), cv2.CV_32F))
        interior = cv2.erode((s.instances > 0).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        bg = cv2.erode((s.instances == 0).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        bg_detail.append(lap[bg].mean())
        for o in s.objects:
            m = cv2.erode((s.instances == o.instance_id).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            if m.sum() < 30:
                continue
            sat.append(hsv[..., 1][m].mean())
            detail.append(lap[m].mean())
            mean_rgb.append(s.image[m].mean(axis=0))
            classes.append(o.class_index)
        assert interior.any()
    return np.array(sat), np.array(detail), np.array(bg_detail), np.array(mean_rgb), np.array(classes)


def test_domains_differ_and_classes_are_learnable():
    stats = {d: _object_stats(_scenes(d, 40)) for d in ("source", "target")}
    s_sat, s_detail, s_bg, _, _ = stats["source"]
    t_sat, t_detail, t_bg, _, _ = stats["target"]
    assert s_sat.mean() > t_sat.mean() + 40  # flat saturated colours vs. duller textured ones
    assert t_detail.mean() > 2 * s_detail.mean()  # textures inside objects
    assert t_bg.mean() > 2 * s_bg.mean()  # cluttered, textured backgrounds
    # Within each domain the class is predictable from the object's mean colour alone (nearest centroid,
    # trained on the first half of the objects, tested on the second half).
    for domain, (_, _, _, rgb, cls) in stats.items():
        half = len(cls) // 2
        centroids = {c: rgb[:half][cls[:half] == c].mean(axis=0) for c in np.unique(cls[:half])}
        keys = np.array(list(centroids))
        dist = np.linalg.norm(rgb[half:, None, :] - np.stack([centroids[k] for k in keys])[None], axis=2)
        accuracy = (keys[dist.argmin(axis=1)] == cls[half:]).mean()
        assert accuracy > 0.8, (domain, accuracy)


def test_cli_writes_both_domains(tmp_path, capsys):
    assert synthetic_main(["--out-dir", str(tmp_path), "--num-train", "2", "--num-val", "1", "--size", "160", "170"]) == 0
    for domain in ("source", "target"):
        ids = (tmp_path / domain / "ImageSets/Segmentation/trainval.txt").read_text().split()
        assert ids == [f"{domain}_train_00000", f"{domain}_train_00001", f"{domain}_val_00000"]
        assert len(list((tmp_path / domain / "JPEGImages").glob("*.jpg"))) == 3
    assert "target: 2 train + 1 val" in capsys.readouterr().out
