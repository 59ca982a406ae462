"""Stage-1 building blocks: class distribution, prompts, batched decoding, config, sharding, cache."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wsss.core.frames import SamFrame
from stage1_pseudolabel.pipeline.cache import CacheKey, CacheMismatchError, EmbeddingCache
from stage1_pseudolabel.pipeline.config import build_config
from wsss.core.cli import shard_ids
from stage1_pseudolabel.sam.class_distribution import (
    channel_labels,
    image_classes,
    log_class_distribution,
    object_channels,
)
from stage1_pseudolabel.sam.backends.sam1 import Sam1Backend
from stage1_pseudolabel.sam.backends.variants import variant
from stage1_pseudolabel.sam.prompts import PAD_LABEL, build_prompts, image_objects
from wsss.core.weak_labels.annotation import ImageAnnotation

TINY = dict(image_size=256, encoder_depth=2, encoder_embed_dim=64, encoder_num_heads=2, window_size=8,
            prompt_embed_dim=64, decoder_mlp_dim=128)


# -- class distribution ------------------------------------------------------------------------------
def test_single_object_is_sams_sigmoid():
    logits = torch.randn(1, 5, 7) * 4
    logp = log_class_distribution(logits, torch.tensor([1]), num_channels=2)
    assert torch.allclose(logp[1].exp(), torch.sigmoid(logits[0]), atol=1e-6)
    assert torch.allclose(logp[0].exp(), 1 - torch.sigmoid(logits[0]), atol=1e-6)


def test_distribution_sums_to_one_and_merges_instances():
    logits = torch.randn(4, 6, 6) * 10
    classes = image_classes(torch.tensor([15, 3, 15, 7]))
    assert classes.tolist() == [3, 7, 15]
    ch = object_channels(torch.tensor([15, 3, 15, 7]), classes)
    assert ch.tolist() == [3, 1, 3, 2]
    logp = log_class_distribution(logits, ch, num_channels=4)
    assert torch.allclose(logp.exp().sum(0), torch.ones(6, 6), atol=1e-5)
    p = torch.softmax(torch.cat([torch.zeros(1, 6, 6), logits]), 0)
    assert torch.allclose(logp[3].exp(), p[1] + p[3], atol=1e-5)
    assert channel_labels(classes).tolist() == [0, 3, 7, 15]


def test_distribution_is_finite_for_saturated_logits_and_no_objects():
    logits = torch.tensor([[[1e4, -1e4]], [[-1e4, 1e4]]], requires_grad=True)
    logp = log_class_distribution(logits, torch.tensor([1, 2]), num_channels=3)
    logp.sum().backward()
    assert torch.isfinite(logits.grad).all()
    empty = log_class_distribution(torch.zeros(0, 3, 3), torch.zeros(0, dtype=torch.long), num_channels=1)
    assert empty.shape == (1, 3, 3) and torch.all(empty == 0)


# -- prompts -------------------------------------------------------------------------------------------
def _annotation(**kw) -> ImageAnnotation:
    h, w = 60, 80
    scribbles = np.full((h, w), 255, np.uint8)
    scribbles[20, 10:30] = 3      # class-3 stroke inside box 0
    scribbles[45, 50:70] = 8      # class-8 stroke inside box 1
    scribbles[5, 0:80] = 0        # background stroke across the top
    scribbles[25, 31:35] = 0      # background inside box 0
    defaults = dict(
        image_id="img", image_path=Path("none.jpg"), height=h, width=w,
        boxes=np.array([[5, 10, 36, 40], [45, 35, 78, 58]], np.float32), box_classes=np.array([3, 8]),
        scribbles=scribbles, points=np.array([[20, 30]], np.float32), point_classes=np.array([3]),
    )
    defaults.update(kw)
    return ImageAnnotation(**defaults)


def test_prompts_box_points_both():
    ann = _annotation()
    frame = SamFrame(height=60, width=80, encoder_size=256, lowres=64)
    objects = image_objects(ann)
    box_only = build_prompts(ann, objects, frame, mode="box")
    assert box_only.point_coords is None and box_only.boxes.shape == (2, 4)
    assert np.allclose(box_only.boxes[0], [5 * 3.2, 10 * 3.2, 36 * 3.2, 40 * 3.2])
    both = build_prompts(ann, objects, frame, mode="both", num_positive=3, num_negative=2)
    assert both.boxes.shape == (2, 4)
    n, p, _ = both.point_coords.shape
    assert n == 2 and p == 5
    labels = both.point_labels
    assert (labels[0] == [1, 1, 1, 0, 0]).all()  # click + 2 stroke points; 2 background negatives
    # The click comes first, in the SAM frame.
    assert np.allclose(both.point_coords[0, 0], [20 * 3.2, 30 * 3.2])
    # Box 1 has no negative scribble inside it: padded with SAM's "not a point" label.
    assert (labels[1] == [1, 1, 1, PAD_LABEL, PAD_LABEL]).all()
    points = build_prompts(ann, objects, frame, mode="points")
    assert points.boxes is None and points.point_coords.shape[:2] == (2, 5)
    again = build_prompts(ann, objects, frame, mode="both", num_positive=3, num_negative=2)
    assert np.array_equal(again.point_coords, both.point_coords)  # deterministic


def test_degenerate_boxes_dropped_and_scribble_only_objects(caplog):
    ann = _annotation(boxes=np.array([[5, 10, 36, 40], [50, 20, 50, 30], [90, 0, 120, 10]], np.float32),
                      box_classes=np.array([3, 8, 8]))
    with caplog.at_level(logging.WARNING):
        objects = image_objects(ann, boxless_objects=False)
    assert objects.num_objects == 1 and "degenerate" in caplog.text
    # By default class 8, whose boxes were dropped, keeps its scribbles as a box-less object.
    mixed = image_objects(ann)
    assert mixed.classes.tolist() == [3, 8] and mixed.boxed.tolist() == [True, False]
    assert mixed.boxed.any() and not mixed.from_boxes
    boxless = _annotation(boxes=np.zeros((0, 4)), box_classes=np.zeros(0))
    objects = image_objects(boxless)
    assert not objects.from_boxes and objects.classes.tolist() == [3, 8]
    frame = SamFrame(height=60, width=80, encoder_size=256, lowres=64)
    prompts = build_prompts(boxless, objects, frame, mode="both")
    assert prompts.boxes is None and (prompts.point_labels[:, 0] == 1).all()
    nothing = _annotation(boxes=np.zeros((0, 4)), box_classes=np.zeros(0), scribbles=None,
                          points=np.zeros((0, 2)), point_classes=np.zeros(0))
    assert image_objects(nothing).num_objects == 0 and not nothing.has_weak_labels


def test_farthest_points_counts():
    from stage1_pseudolabel.sam.prompts import image_rng
    from wsss.core.weak_labels.points import farthest_points

    pts = np.stack([np.arange(10), np.zeros(10)], 1).astype(np.float32)
    rng = image_rng(0, "x")
    assert len(farthest_points(pts, 0, rng)) == 0
    three = farthest_points(pts, 3, rng)
    assert len(three) == 3 and {0.0, 9.0} <= set(three[:, 0].tolist())
    assert len(farthest_points(pts[:2], 5, rng)) == 2


def test_points_mode_without_scribbles_uses_box_centre():
    ann = _annotation(scribbles=None, points=np.zeros((0, 2)), point_classes=np.zeros(0))
    frame = SamFrame(height=60, width=80, encoder_size=256, lowres=64)
    prompts = build_prompts(ann, image_objects(ann), frame, mode="points")
    assert prompts.point_coords.shape == (2, 1, 2) and (prompts.point_labels == 1).all()


def test_batched_decoder_call_equals_one_object_at_a_time():
    model = Sam1Backend.build(variant("vit_b"), seed=0, **TINY)
    ann = _annotation()
    frame = SamFrame(height=60, width=80, encoder_size=256, lowres=64)
    prompts = build_prompts(ann, image_objects(ann), frame, mode="both")
    boxes, coords, labels = prompts.to_tensors()
    emb = torch.randn(1, 64, 16, 16)
    pe = model.dense_pe()
    with torch.no_grad():
        sparse, dense = model.encode_prompts(boxes=boxes, point_coords=coords, point_labels=labels)
        all_at_once, iou = model.decode(emb, sparse_embeddings=sparse, dense_embeddings=dense, dense_pe=pe)
        assert all_at_once.shape == (2, 64, 64) and iou.shape == (2,)
        for i in range(2):
            # Object 1 alone, without the padding its batch-mate forced on it.
            keep = labels[i] != PAD_LABEL
            s, d = model.encode_prompts(boxes=boxes[i : i + 1], point_coords=coords[i : i + 1, keep],
                                        point_labels=labels[i : i + 1, keep])
            one, _ = model.decode(emb, sparse_embeddings=s, dense_embeddings=d, dense_pe=pe)
            if keep.all():
                assert torch.allclose(one[0], all_at_once[i], atol=1e-4)
            else:
                # "Not a point" tokens still take part in attention: close, not identical.
                assert one.shape == (1, 64, 64)
        multi, _ = model.decode(emb, sparse_embeddings=sparse, dense_embeddings=dense, dense_pe=pe,
                                multimask_output=True)
        assert multi.shape == (2, 64, 64)


# -- config, sharding, cache ---------------------------------------------------------------------------
def test_config_precedence_and_unknown_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: {epochs: 7, lr: 0.5}\nloss: {scribbles: 2.0, neighbourhood: 0.5}\n")
    cfg = build_config(config_file=str(path), overrides={"train.lr": 0.25, "data.root": None},
                       cfg_options=["loss.neighbourhood=0.1", "prompts.mode=box", "model.kwargs={image_size: 256}"])
    assert cfg.train.epochs == 7 and cfg.train.lr == 0.25 and cfg.prompts.mode == "box"
    assert cfg.loss == {"scribbles": 2.0, "neighbourhood": 0.1}
    assert cfg.model.kwargs == {"image_size": 256}
    assert cfg.data.root is None and cfg.data.dataset is None  # VOC 2012's description at its own root
    with pytest.raises(ValueError, match="unknown stage-1 config key"):
        build_config(cfg_options=["epoch=3"])
    with pytest.raises(ValueError, match="prompts.mode"):
        build_config(cfg_options=["prompts.mode=boxes"])
    synthetic = str(Path(__file__).parents[2] / "configs" / "stage1" / "synthetic.yaml")  # data.root: data/synthetic
    assert build_config(config_file=synthetic).data.root == "data/synthetic"
    # another dataset named above the file: its own root, or the one given with it
    assert build_config(config_file=synthetic, overrides={"data.dataset": "d.yaml"}).data.root is None
    assert build_config(config_file=synthetic, overrides={"data.dataset": "d.yaml", "data.root": "r"}).data.root == "r"
    for key in ("data.scribble_dir=s", "data.num_foreground=3", "points_dir=p"):  # the description's facts
        with pytest.raises(ValueError, match=r"data\.\w+ is .*dataset description.*_base_: voc2012\.yaml"):
            build_config(cfg_options=[key])
    for name in ("voc_box_scribble", "voc_box", "voc_scribble_points", "synthetic", "tiny_random", "demo_proxy"):
        build_config(config_file=str(Path(__file__).parents[2] / "configs" / "stage1" / f"{name}.yaml"))


def test_shards_partition_the_list():
    ids = [f"id{i}" for i in range(11)]
    shards = [shard_ids(ids, shard_index=i, num_shards=3) for i in range(3)]
    assert sorted(sum(shards, [])) == sorted(ids)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    with pytest.raises(ValueError):
        shard_ids(ids, shard_index=3, num_shards=3)


def test_cache_refuses_other_model_or_size(tmp_path):
    key = CacheKey(model_type="vit_b", encoder_fingerprint="weights:abc", encoder_size=256, embedding_shape=(8, 4, 4))
    cache = EmbeddingCache(tmp_path / "emb", key=key)
    emb = torch.randn(8, 4, 4)
    cache.save("a", emb, height=10, width=20)
    loaded = cache.load("a", height=10, width=20)
    assert loaded.shape == (1, 8, 4, 4) and torch.allclose(loaded[0], emb.half().float())
    assert torch.load(cache.path("a"), weights_only=True)["embedding"].dtype == torch.float16
    with pytest.raises(CacheMismatchError, match="another dataset"):
        cache.load("a", height=11, width=20)
    for other in (dict(model_type="vit_h"), dict(encoder_fingerprint="weights:zzz"), dict(encoder_size=1024)):
        with pytest.raises(CacheMismatchError, match="Refusing"):
            EmbeddingCache(tmp_path / "emb", key=CacheKey(**{**key.__dict__, **other}))
    assert not list((tmp_path / "emb").glob("*.tmp"))


def test_cache_entries_fsynced_only_when_durable_and_a_cut_entry_named(tmp_path, monkeypatch):
    """Bulk cache writes skip the two fsyncs per file unless ``durable``; an entry cut short (what a
    power loss can leave without them) is refused with its path, not read as garbage."""
    import os

    key = CacheKey(model_type="vit_b", encoder_fingerprint="weights:abc", encoder_size=256, embedding_shape=(8, 4, 4))
    calls = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd))[1])
    for durable, expected in ((False, 0), (True, 2)):  # the file and its folder
        cache = EmbeddingCache(tmp_path / f"emb_{durable}", key=key, durable=durable)
        calls.clear()
        cache.save("a", torch.randn(8, 4, 4), height=10, width=20)
        assert len(calls) == expected, durable
    path = cache.path("a")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CacheMismatchError, match=re.escape(str(path)) + ".*not a readable cache entry"):
        cache.load("a", height=10, width=20)


def test_image_inputs_pickle_and_prepare_the_same_image(tmp_path):
    """The training pool sends ImageInputs to worker processes (pickled under the spawn start method):
    a round trip keeps what an image's objects, prompts and constraints are made from."""
    import pickle

    from stage1_pseudolabel.pipeline.prepare import ImageInputs, compile_constraints, prepare_image

    cfg = build_config(overrides={"work_dir": str(tmp_path)})
    inputs = ImageInputs.from_config(cfg)
    assert (inputs.prompts, inputs.weak_labels, inputs.seed) == (cfg.prompts, tuple(cfg.data.weak_labels), cfg.seed)
    assert inputs.superpixel_dir == cfg.lowres_dir and inputs.class_names[0] == "background"
    again = pickle.loads(pickle.dumps(inputs))
    assert again.constraints.active == inputs.constraints.active and again.class_names == inputs.class_names
    image_path = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(image_path)
    ann = _annotation(image_path=image_path)
    a, b = (prepare_image(ann, inputs=i, encoder_size=256, lowres=64) for i in (inputs, again))
    assert torch.equal(a.classes, b.classes) and torch.equal(a.channels, b.channels)
    for name in ("boxes", "point_coords", "point_labels"):
        np.testing.assert_array_equal(getattr(a.prompts, name), getattr(b.prompts, name))
    log_probs = torch.log_softmax(torch.randn(a.num_channels, 64, 64, generator=torch.Generator().manual_seed(0)), 0)
    truths = [compile_constraints(ann, p, inputs=i).truths(log_probs) for p, i in ((a, inputs), (b, again))]
    assert truths[0].keys() == truths[1].keys() and all(torch.equal(truths[0][k], truths[1][k]) for k in truths[0])


def test_pseudo_mask_argmax_and_confidence():
    from stage1_pseudolabel.pipeline.config import build_config
    from stage1_pseudolabel.pipeline.predict import pseudo_mask
    from stage1_pseudolabel.pipeline.prepare import ImageInputs, prepare_image

    ann = _annotation()
    prepared = prepare_image(ann, inputs=ImageInputs.from_config(build_config()), encoder_size=256, lowres=64)
    assert prepared.classes.tolist() == [3, 8] and prepared.channels.tolist() == [1, 2]
    logits = torch.full((2, 64, 64), -20.0)
    logits[0, :, :20] = 20.0   # object 0 (class 3) on the left
    logits[1, :, 40:] = 0.0    # object 1 (class 8): p = 0.5 against background
    mask = pseudo_mask(prepared, logits)
    assert mask.shape == (60, 80) and set(np.unique(mask)) <= {0, 3, 8}
    assert (mask[:, :10] == 3).all()
    unsure = pseudo_mask(prepared, logits, confidence_threshold=0.9)
    assert (unsure[:, 70:] == 255).all() and (unsure[:, :10] == 3).all()


def test_pseudo_mask_dense_crf_follows_the_image_edge():
    from wsss.core.crf import crf_available, crf_params
    from stage1_pseudolabel.pipeline.predict import pseudo_mask
    from stage1_pseudolabel.pipeline.prepare import ImageInputs, prepare_image

    if not crf_available():
        pytest.skip("pydensecrf2 not installed")
    prepared = prepare_image(_annotation(), inputs=ImageInputs.from_config(build_config()), encoder_size=256,
                             lowres=64)
    image = np.zeros((60, 80, 3), np.uint8)
    image[:, :50] = (40, 90, 40)  # background colour up to column 50, the object's colour after it
    image[:, 50:] = (220, 60, 60)
    # 80 px wide -> 64 low-res cells: image column x is low-res column 0.8 x
    logits = torch.full((2, 64, 64), -6.0)
    logits[1, :, 32:48] = 0.3  # columns 40..60: barely object 1 (class 8), across the edge at 50
    logits[1, :, 48:] = 6.0
    plain = pseudo_mask(prepared, logits)
    assert (plain[:, 42:48] == 8).all() and (plain[:, :36] == 0).all()
    refined = pseudo_mask(prepared, logits, crf=crf_params({}), image=image)
    assert refined.shape == (60, 80) and set(np.unique(refined)) <= {0, 3, 8}
    assert (refined[:, 42:48] == 0).all(), "the CRF should give the background-coloured columns to the background"
    assert (refined[:, 52:] == 8).all() and (refined[:, :36] == 0).all()
    with pytest.raises(ValueError, match="needs the image"):
        pseudo_mask(prepared, logits, crf=crf_params({}))


def test_crf_config_is_checked():
    from wsss.core.crf import crf_params

    assert build_config(cfg_options=["crf={bi_weight: 8, bi_rgb_std: 10}"]).crf == crf_params({"bi_weight": 8, "bi_rgb_std": 10})
    assert build_config().crf is None
    with pytest.raises(ValueError, match="unknown key.*bi_wieght"):
        build_config(cfg_options=["crf={bi_wieght: 8}"])
    with pytest.raises(ValueError, match="every std > 0"):
        build_config(cfg_options=["crf={bi_xy_std: 0}"])
    with pytest.raises(ValueError, match="mapping"):
        build_config(cfg_options=["crf=true"])


def _tensor_result(n: int):
    return {"x": torch.full((4,), float(n))}


def test_process_pool_hands_back_results_in_order_and_without_shared_memory():
    """Results come back in submission order as private copies: a tensor sent through the pool's
    pipe by torch's pickler would hold a shared-memory file descriptor for as long as it lives, and
    a run keeps thousands of prepared images."""
    from stage1_pseudolabel.pipeline.io import OrderedProcessPool

    got = []
    with OrderedProcessPool(2) as pool:
        for n in range(6):
            pool.submit(_tensor_result, (n,), got.append)
    assert [int(g["x"][0]) for g in got] == list(range(6))
    assert not any(g["x"].is_shared() for g in got)
