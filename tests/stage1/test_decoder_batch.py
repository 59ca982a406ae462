"""Several images per mask-decoder call (``decoder_batch_images``) against one call per image.

For each backend (SAM 1, SAM 2.1, HQ-SAM; tiny random-weight configs, real VOC images), the objects
of several images decoded together (:meth:`SamBackend.decode_images`,
:meth:`DecoderRunner.batch_object_logits`) give the logits, predicted IoU and gradients of the
per-image path (:meth:`DecoderRunner.object_logits`, itself checked against the official predictors
in ``tests/stage1/test_backends.py``), also through a DDP wrapper and a frozen copy of the decoder; and train /
generate with batching give the losses, weights and masks of one call per image.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from stage1_pseudolabel.pipeline.config import build_config
from stage1_pseudolabel.pipeline.model import load_model
from stage1_pseudolabel.pipeline.predict import DecoderRunner
from stage1_pseudolabel.pipeline.prepare import ImageInputs, open_dataset, prepare_image
from wsss.core.weak_labels.images import read_image

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {
    "sam1": REPO_ROOT / "configs/stage1/tiny_random.yaml",
    "sam2.1": REPO_ROOT / "configs/stage1/tiny_random_sam2.yaml",
    "hq-sam": REPO_ROOT / "configs/stage1/tiny_random_hq.yaml",
}
BACKENDS = ["sam1", "sam2.1", "hq-sam"]


def voc_cfg(backend: str, voc_root, tmp_path, **sections):
    data = {"root": str(voc_root), "split": "train", "max_images": 4, "weak_labels": ["boxes", "points"]}
    cfg = build_config(config_file=str(CONFIGS[backend]), overrides={"data": data, "work_dir": str(tmp_path)})
    return cfg.updated(**sections)


def voc_images(cfg, model, key):
    """Five images: the first four of the slice (4, 1, 3 and 1 boxes) with the second one's box kept
    for one object and another class clicked (one boxed, one point-prompted object), and a fifth
    without any object. Returns ``[(prepared, features)]`` (features out of inference mode)."""
    dataset = open_dataset(cfg)
    out = []
    anns = [dataset.load(i) for i in dataset.ids]
    ann = anns[1]
    other = 3 if int(ann.box_classes[0]) != 3 else 8
    anns[1] = dataclasses.replace(ann, boxes=ann.boxes[:1], box_classes=ann.box_classes[:1], scribbles=None,
                                  points=np.array([[ann.width / 2, ann.height / 2]], np.float32),
                                  point_classes=np.array([other]))
    anns.append(dataclasses.replace(anns[2], boxes=np.zeros((0, 4), np.float32), box_classes=np.zeros(0, np.int64),
                                    scribbles=None, points=np.zeros((0, 2), np.float32),
                                    point_classes=np.zeros(0, np.int64)))
    inputs = ImageInputs.from_config(cfg)
    for ann in anns:
        prepared = prepare_image(ann, inputs=inputs, encoder_size=key.encoder_size, lowres=key.lowres_size,
                                 padded=key.padded)
        features = model.encode([model.prepare_image(read_image(ann.image_path))], device=torch.device("cpu"))
        features = type(features)({k: v.clone() for k, v in features.tensors.items()})
        out.append((prepared, features))
    return out


def count_calls(model):
    """Wrap ``model.decode_images``: returns the list of the entry counts of its calls."""
    calls = []
    real = model.decode_images

    def spy(features, **kwargs):
        calls.append(len(features))
        return real(features, **kwargs)

    model.decode_images = spy
    return calls


@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_logits_equal_per_image_logits(backend, voc_root, tmp_path):
    """Box prompts only, and boxes plus points (different point counts per image: several buckets),
    with a mixed image (one boxed, one clicked object) and one without objects: every image's logits
    equal object_logits' (1e-5); one decoder call holds the boxed objects of 3+ images."""
    for mode in ("box", "both"):
        cfg = voc_cfg(backend, voc_root, tmp_path, prompts=dict(mode=mode))
        model, key = load_model(cfg.model, device=torch.device("cpu"))
        images = voc_images(cfg, model, key)
        prepared = [p for p, _ in images]
        assert [p.objects.num_objects for p in prepared] == [4, 2, 3, 1, 0]
        assert [len(p.prompts.groups()) for p in prepared][:2] == [1, 2]
        runner = DecoderRunner(model, device=torch.device("cpu"))
        calls = count_calls(model)
        with torch.no_grad():
            ref = [runner.object_logits(p, f) for p, f in images]
            got = runner.batch_object_logits(prepared, [f for _, f in images])
        assert len(got) == len(ref)
        for j, (a, b) in enumerate(zip(ref, got)):
            assert a.shape == b.shape == (prepared[j].objects.num_objects, key.lowres_size, key.lowres_size)
            assert b.dtype == torch.float32
            if a.numel():
                assert (a - b).abs().max() < 1e-5, (backend, mode, j, float((a - b).abs().max()))
        assert sum(calls) >= 4 and len(calls) < 5  # fewer calls than images with prompt groups
        if mode == "box":
            # SAM 1 / HQ: box 2 tokens, click + pad 2: one call; SAM 2: box 2 corners + pad = 3, click + pad = 2
            assert max(calls) >= 4, calls


@pytest.mark.parametrize("backend", BACKENDS)
def test_decode_images_equals_decode_with_iou_and_multimask(backend, voc_root, tmp_path):
    """The backend method alone: logits and predicted IoU of each entry equal decode()'s (single and
    multimask output); an entry without objects is empty; mixed token counts are refused."""
    cfg = voc_cfg(backend, voc_root, tmp_path, prompts=dict(mode="box"))
    model, key = load_model(cfg.model, device=torch.device("cpu"))
    images = voc_images(cfg, model, key)
    pe = model.dense_pe()
    feats, sparse, dense = [], [], []
    for prepared, features in [images[0], images[2], images[3], images[0]]:  # the same image twice, too
        boxes, _, _ = prepared.prompts.to_tensors()
        s, d = model.encode_prompts(boxes=boxes, point_coords=None, point_labels=None)
        feats.append(features), sparse.append(s), dense.append(d)
    sparse[3], dense[3] = sparse[3][:2], dense[3][:2]
    feats.append(images[4][1]), sparse.append(sparse[0][:0]), dense.append(dense[0][:0])
    for multimask in (False, True):
        with torch.no_grad():
            got = model.decode_images(feats, sparse_embeddings=sparse, dense_embeddings=dense, dense_pe=pe,
                                      multimask_output=multimask)
            for f, s, d, (logits, iou) in zip(feats, sparse, dense, got):
                if s.shape[0] == 0:
                    assert logits.shape == (0, key.lowres_size, key.lowres_size) and iou.shape == (0,)
                    continue
                ref_logits, ref_iou = model.decode(f, sparse_embeddings=s, dense_embeddings=d, dense_pe=pe,
                                                   multimask_output=multimask)
                assert (logits - ref_logits).abs().max() < 1e-5, (backend, multimask)
                assert (iou - ref_iou).abs().max() < 1e-5, (backend, multimask)
    click = torch.zeros(1, 3, 2), torch.ones(1, 3)
    s_pt, d_pt = model.encode_prompts(boxes=None, point_coords=click[0], point_labels=click[1])
    with pytest.raises(ValueError, match="one token count"):
        model.decode_images(feats[:2], sparse_embeddings=[sparse[0], s_pt], dense_embeddings=[dense[0], d_pt],
                            dense_pe=pe)


@pytest.fixture()
def gloo_group(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_gradients_equal_per_image_gradients(backend, voc_root, tmp_path, gloo_group):
    """A weighted sum of every image's logits: the decoder's gradients through one batched call (plain,
    and through a DDP wrapper) equal those of per-image calls (1e-5 relative); a frozen copy gives
    the plain decoder's logits and no gradient."""
    cfg = voc_cfg(backend, voc_root, tmp_path, prompts=dict(mode="both"))
    model, key = load_model(cfg.model, device=torch.device("cpu"))
    images = voc_images(cfg, model, key)
    frozen = copy.deepcopy(model.mask_decoder).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    params = model.trainable_parameters(train_heads="single")
    names = [n for n, p in model.mask_decoder.named_parameters() if p.requires_grad]
    runner = DecoderRunner(model, device=torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    weights = [torch.randn(p.objects.num_objects, key.lowres_size, key.lowres_size, generator=g) for p, _ in images]

    def grads(logits_list):
        model.mask_decoder.zero_grad(set_to_none=True)
        sum((w * x).sum() for w, x in zip(weights, logits_list)).backward()
        return [p.grad.detach().clone() for p in params]

    ref = grads([runner.object_logits(p, f) for p, f in images])
    prepared, feats = [p for p, _ in images], [f for _, f in images]
    ddp = torch.nn.parallel.DistributedDataParallel(model.mask_decoder)
    for decoder in (None, ddp):
        got = grads(runner.batch_object_logits(prepared, feats, mask_decoder=decoder))
        total = float(torch.cat([a.flatten() for a in ref]).norm())
        assert float(torch.cat([(a - b).flatten() for a, b in zip(ref, got)]).norm()) <= 1e-5 * total
        # per parameter, 1e-5 relative; for gradients that are zero up to rounding (attention key
        # biases: softmax ignores a constant) the floor is 1e-8 of the whole gradient's norm
        for name, a, b in zip(names, ref, got):
            assert float((a - b).norm()) <= 1e-5 * max(float(a.norm()), 1e-3 * total), (backend, name, decoder)
    with torch.no_grad():
        plain = runner.batch_object_logits(prepared, feats)
    copied = runner.batch_object_logits(prepared, feats, mask_decoder=frozen)
    assert all(not x.requires_grad for x in copied)
    if backend != "sam2.1":  # SAM 2's decoder reads another output in eval mode (the stability fallback)
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(plain, copied))
    model.mask_decoder.eval()
    with torch.no_grad():
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(runner.batch_object_logits(prepared, feats), copied))


# -- train and generate ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from wsss.core.synthetic import write_dataset

    root = tmp_path_factory.mktemp("synthetic_batch") / "data"
    write_dataset(root, domain="target", num_train=6, num_val=1, seed=0, size_range=(120, 160))
    return root


def synthetic_cfg(backend, root, work, **sections):
    train = {"epochs": 1, "batch_size": 3, "checkpoint_every": 10}
    cfg = build_config(config_file=str(CONFIGS[backend]),
                       overrides={"data.root": str(root), "work_dir": str(work), "train": train})
    return cfg.updated(**sections)


@pytest.mark.parametrize("backend", ["sam1", "hq-sam"])
def test_train_and_generate_with_decoder_batches_match_one_call_per_image(backend, synthetic, tmp_path, monkeypatch):
    """2 steps of 3 images: with decoder_batch_images 3 (one decoder call per step; the zero-shot
    anchors too) the step losses and the trained decoder equal one call per image's; generate with
    4 images per call writes the same masks as with 1."""
    from stage1_pseudolabel.pipeline.embed import run_embed
    from stage1_pseudolabel.pipeline.generate import run_generate
    from stage1_pseudolabel.pipeline.train import run_train

    one = synthetic_cfg(backend, synthetic, tmp_path / "one", model=dict(decoder_batch_images=1))
    run_embed(one, progress=False)
    many = synthetic_cfg(backend, synthetic, tmp_path / "many", model=dict(decoder_batch_images=3))
    shutil.copytree(one.cache_dir, many.cache_dir)
    sizes = []
    real = DecoderRunner.batch_object_logits

    def spy(self, prepared_list, features_list, **kwargs):
        sizes.append(len(prepared_list))
        return real(self, prepared_list, features_list, **kwargs)

    monkeypatch.setattr(DecoderRunner, "batch_object_logits", spy)
    a = run_train(one, progress=False)
    assert set(sizes) == {1}  # the zero-shot passes, one image each
    sizes.clear()
    b = run_train(many, progress=False)
    assert sizes == [3, 3, 3, 3]  # the zero-shot passes of the two steps' images, then one call per step
    assert a["steps"] == b["steps"] == 2
    assert np.allclose(a["losses"], b["losses"], rtol=1e-5, atol=1e-6), (a["losses"], b["losses"])
    wa = torch.load(one.decoder_path(), weights_only=True)["mask_decoder"]
    wb = torch.load(many.decoder_path(), weights_only=True)["mask_decoder"]
    assert set(wa) == set(wb)
    for k in wa:
        diff = float((wa[k] - wb[k]).abs().max())
        if k.endswith("k_proj.bias"):
            # Attention key biases get a zero gradient in exact arithmetic (softmax ignores a constant per
            # query): Adam turns the rounding noise of either path into steps of up to lr each.
            assert diff <= 2 * one.train.lr * a["steps"], (k, diff)
        else:
            # Adam divides each gradient element by its own magnitude, so an element whose gradient is
            # near rounding level moves by a share of lr that rounding decides: a tenth of the steps'
            # lr at most here, against a full lr per step for a wrongly paired image.
            assert torch.allclose(wa[k], wb[k], atol=max(1e-5, 0.1 * one.train.lr * a["steps"] / 2), rtol=1e-4), (k, diff)
    logs = [[json.loads(line) for line in c.train_log.read_text().splitlines()] for c in (one, many)]
    assert [r.get("fg_in_boxes_zero_shot") for r in logs[0]] == pytest.approx(
        [r.get("fg_in_boxes_zero_shot") for r in logs[1]], abs=1e-6)

    gen = synthetic_cfg(backend, synthetic, tmp_path / "one", model=dict(decoder_batch_images=4), generate=dict(instances=True, output_dir=str(tmp_path / "masks_many")))
    sizes.clear()
    s_one = run_generate(one.updated(generate={"instances": True}), progress=False)
    assert set(sizes) == {1}
    sizes.clear()
    s_many = run_generate(gen, progress=False)
    assert sizes == [4, 2]
    assert s_one["written"] == s_many["written"] == 6
    out_one, out_many = one.output_path(zero_shot=False), gen.output_path(zero_shot=False)
    for png in sorted(out_one.glob("*.png")):
        assert png.read_bytes() == (out_many / png.name).read_bytes(), png.name


def test_decoder_batch_images_is_checked():
    assert build_config(config_file=str(CONFIGS["sam1"])).model.decoder_batch_images == 8
    with pytest.raises(ValueError, match="decoder_batch_images must be >= 1"):
        build_config(config_file=str(CONFIGS["sam1"]), cfg_options=["model.decoder_batch_images=0"])


def test_zero_shot_groups_are_the_first_epochs_decoder_calls():
    from stage1_pseudolabel.pipeline.train import epoch_order, zero_shot_groups

    groups = zero_shot_groups(7, seed=3, world_size=1, batch_size=3, per_call=2)
    order = epoch_order(7, seed=3, epoch=0, rank=0, world_size=1)
    chunks = [tuple(order[s : s + 3][c : c + 2]) for s in range(0, 7, 3) for c in (0, 2) if order[s : s + 3][c : c + 2]]
    assert sorted(groups) == list(range(7))
    assert all(groups[i] in chunks and i in groups[i] for i in range(7))
    assert zero_shot_groups(7, seed=3, world_size=1, batch_size=3, per_call=1) == {i: (i,) for i in range(7)}
    two = zero_shot_groups(7, seed=3, world_size=2, batch_size=3, per_call=3)
    assert sorted(two) == list(range(7)) and all(i in g for i, g in two.items())


def test_resumed_batched_training_equals_an_uninterrupted_run(synthetic, tmp_path, monkeypatch):
    """decoder_batch_images 3, batch_size 3, 2 epochs: killed at the first image of step 4 and resumed
    (the images of step 4 are prepared again, with their zero-shot passes), the run ends with the
    weights and the zero-shot log of an uninterrupted one, bit for bit. (The zero-shot passes are
    made over fixed groups, train.zero_shot_groups, for this. On this CPU a batch's composition does
    not change an image's bits, so the test holds without the groups too; on a GPU, kernel choices
    may depend on the batch size.)"""
    from stage1_pseudolabel.pipeline import train as train_module
    from stage1_pseudolabel.pipeline.embed import run_embed
    from stage1_pseudolabel.pipeline.train import run_train

    a = synthetic_cfg("sam1", synthetic, tmp_path / "a", train=dict(epochs=2, checkpoint_every=1), model=dict(decoder_batch_images=3))
    run_embed(a, progress=False)
    run_train(a, progress=False)
    b = synthetic_cfg("sam1", synthetic, tmp_path / "b", train=dict(epochs=2, checkpoint_every=1), model=dict(decoder_batch_images=3))
    shutil.copytree(a.cache_dir, b.cache_dir)
    calls = {"n": 0}
    real_getitem = train_module.TrainImages.__getitem__

    def dies_at_step_4(self, index):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt("simulated kill")
        return real_getitem(self, index)

    monkeypatch.setattr(train_module.TrainImages, "__getitem__", dies_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        run_train(b, progress=False)
    monkeypatch.setattr(train_module.TrainImages, "__getitem__", real_getitem)
    assert run_train(b, resume=True, progress=False)["steps"] == 4
    wa = torch.load(a.decoder_path(), weights_only=True)["mask_decoder"]
    wb = torch.load(b.decoder_path(), weights_only=True)["mask_decoder"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    logs = [[json.loads(line) for line in c.train_log.read_text().splitlines()] for c in (a, b)]
    assert [r["step"] for r in logs[1]] == [1, 2, 3, 4]
    assert [r.get("fg_in_boxes_zero_shot") for r in logs[0]] == [r.get("fg_in_boxes_zero_shot") for r in logs[1]]
