"""Every stage-1 backend against its official predictor, on real VOC images.

For each backend (SAM 1 ``SamPredictor``, SAM 2.1 ``SAM2ImagePredictor``, HQ-SAM's ``SamPredictor``),
with seeded random weights at reduced size (the official architecture code, smaller widths and
depths, 256 px input), the pipeline's zero-shot low-res logits for the images' box prompts
(``load_model`` -> ``encode`` -> ``prepare_image`` -> ``DecoderRunner.object_logits``) equal the
predictor's (max abs diff < 1e-4) and the pixel masks agree.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import pytest
import torch

from stage1_pseudolabel.pipeline.config import build_config
from stage1_pseudolabel.pipeline.model import load_model
from stage1_pseudolabel.pipeline.predict import DecoderRunner
from stage1_pseudolabel.pipeline.prepare import ImageInputs, open_dataset, prepare_image
from wsss.core.weak_labels.images import read_image

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

CONFIGS = {
    "sam1": REPO_ROOT / "configs/stage1/tiny_random.yaml",
    "sam2.1": REPO_ROOT / "configs/stage1/tiny_random_sam2.yaml",
    "hq-sam": REPO_ROOT / "configs/stage1/tiny_random_hq.yaml",
}
NUM_IMAGES = 3


def backend_cfg(backend: str, voc_root, tmp_path, **sections):
    cfg = build_config(config_file=str(CONFIGS[backend]),
                       overrides={"data": {"root": str(voc_root), "split": "train", "max_images": NUM_IMAGES},
                                  "prompts.mode": "box", "work_dir": str(tmp_path)})
    return cfg.updated(**sections)


def official_predictor(backend: str, model, image: np.ndarray):
    """The backend's official predictor with ``image`` set, and the extra ``predict_torch`` arguments."""
    if backend == "sam2.1":
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        predictor = SAM2ImagePredictor(model.official)
        s = model.encoder_size  # the predictor's feature sizes are written for 1024 px; reduced size here
        predictor._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]
        predictor.set_image(image)
        return predictor, {}
    if backend == "hq-sam":
        from segment_anything_hq import SamPredictor

        extra = {"hq_token_only": False}
    else:
        from segment_anything import SamPredictor

        extra = {}
    predictor = SamPredictor(model.official)
    predictor.set_image(image)
    return predictor, extra


def official_predictions(backend: str, model, image: np.ndarray, boxes: Optional[np.ndarray], *,
                         points: Optional[np.ndarray] = None, labels: Optional[np.ndarray] = None):
    """Low-res logits ``[N, L, L]`` and pixel logits ``[N, H, W]`` of the official predictor, for box
    prompts ``[N, 4]`` (one call) or, with ``boxes`` None, point prompts ``[N, P, 2]`` with labels
    ``[N, P]`` (one call per object)."""
    predictor, extra = official_predictor(backend, model, image)
    if boxes is None and points is None:  # no prompt at all
        prompts = [dict()]
    elif boxes is None:
        prompts = [dict(points=xy[None], labels=lab[None]) for xy, lab in zip(points, labels)]
    else:
        prompts = [dict(boxes=boxes)]
    low_all, pix_all = [], []
    for p in prompts:
        if backend == "sam2.1":
            kw = (dict(box=p["boxes"]) if "boxes" in p else
                  dict(point_coords=p["points"][0], point_labels=p["labels"][0]) if "points" in p else {})
            masks, _, low = predictor.predict(**kw, multimask_output=False, return_logits=True)
            n = len(p["boxes"]) if "boxes" in p else 1
            low_all.append(torch.as_tensor(low).reshape(n, *low.shape[-2:]))
            pix_all.append(torch.as_tensor(masks).reshape(n, *masks.shape[-2:]))
            continue
        size = image.shape[:2]
        if "boxes" in p:
            b = predictor.transform.apply_boxes_torch(torch.as_tensor(p["boxes"], dtype=torch.float32), size)
            masks, _, low = predictor.predict_torch(None, None, boxes=b, multimask_output=False, return_logits=True,
                                                    **extra)
        elif not p:
            masks, _, low = predictor.predict_torch(None, None, boxes=None, multimask_output=False, return_logits=True,
                                                    **extra)
        else:
            c = predictor.transform.apply_coords_torch(torch.as_tensor(p["points"], dtype=torch.float32), size)
            masks, _, low = predictor.predict_torch(c, torch.as_tensor(p["labels"], dtype=torch.float32), boxes=None,
                                                    multimask_output=False, return_logits=True, **extra)
        low_all.append(low[:, 0])
        pix_all.append(masks[:, 0])
    return torch.cat(low_all), torch.cat(pix_all)


def pipeline_predictions(cfg, model, key, ann, image, *, precision="fp32"):
    prepared = prepare_image(ann, inputs=ImageInputs.from_config(cfg), encoder_size=key.encoder_size,
                             lowres=key.lowres_size, padded=key.padded)
    from stage1_pseudolabel.sam.precision import autocast

    with autocast(precision, "cpu"):
        features = model.encode([model.prepare_image(image)], device=torch.device("cpu"))
    runner = DecoderRunner(model, device=torch.device("cpu"), precision=precision)
    with torch.no_grad():
        logits = runner.object_logits(prepared, features)
    return prepared, logits, prepared.frame.lowres_to_pixels(logits)


@pytest.mark.parametrize("backend", ["sam1", "sam2.1", "hq-sam"])
def test_zero_shot_logits_equal_the_official_predictor(backend, voc_root, tmp_path):
    cfg = backend_cfg(backend, voc_root, tmp_path)
    model, key = load_model(cfg.model, device=torch.device("cpu"))
    assert key.backend == backend and model.backend == backend
    dataset = open_dataset(cfg)
    objects = 0
    for image_id in dataset.ids:
        ann = dataset.load(image_id)
        image = read_image(ann.image_path)
        prepared, low, pix = pipeline_predictions(cfg, model, key, ann, image)
        boxes = prepared.objects.boxes
        with torch.no_grad():
            ref_low, ref_pix = official_predictions(backend, model, image, boxes)
        objects += len(boxes)
        assert low.shape == ref_low.shape == (len(boxes), key.lowres_size, key.lowres_size)
        # SAM2ImagePredictor clamps its returned low-res logits to [-32, 32]; the pixel logits are not.
        clamp = 32.0 if backend == "sam2.1" else float("inf")
        assert (low.clamp(-clamp, clamp) - ref_low).abs().max() < 1e-4, image_id
        assert pix.shape == ref_pix.shape == (len(boxes), ann.height, ann.width)
        assert (pix - ref_pix).abs().max() < 1e-3, image_id
        agree = ((pix > 0) == (ref_pix > 0)).float().mean()
        assert agree >= 0.9999, (image_id, float(agree))
    assert objects >= NUM_IMAGES


@pytest.mark.parametrize("backend", ["sam1", "sam2.1", "hq-sam"])
def test_boxes_and_clicks_in_one_image_equal_the_official_predictor(backend, voc_root, tmp_path):
    """An image whose last object is clicked instead of boxed (a disc boxed, its cup clicked): the
    boxed objects' logits equal the predictor's for their boxes, the clicked one's for its click
    (the pipeline makes one decoder call per kind of prompt)."""
    cfg = backend_cfg(backend, voc_root, tmp_path, data=dict(weak_labels=["boxes", "points"]))
    model, key = load_model(cfg.model, device=torch.device("cpu"))
    dataset = open_dataset(cfg)
    ann = dataset.load(dataset.ids[0])
    image = read_image(ann.image_path)
    boxes, classes = ann.boxes[:1], ann.box_classes[:1]
    other = 3 if int(classes[0]) != 3 else 8  # a class without a box, clicked at the image centre
    click = np.array([[ann.width / 2, ann.height / 2]], np.float32)
    mixed = dataclasses.replace(ann, boxes=boxes, box_classes=classes, scribbles=None, points=click,
                                point_classes=np.array([other]))
    prepared, low, pix = pipeline_predictions(cfg, model, key, mixed, image)
    assert prepared.objects.boxed.tolist() == [True, False] and prepared.objects.classes.tolist() == [int(classes[0]), other]
    assert len(prepared.prompts.groups()) == 2
    with torch.no_grad():
        ref_box, ref_box_pix = official_predictions(backend, model, image, prepared.objects.boxes[:1])
        ref_pt, ref_pt_pix = official_predictions(backend, model, image, None, points=click[None],
                                                  labels=np.ones((1, 1), np.float32))
    clamp = 32.0 if backend == "sam2.1" else float("inf")
    assert (low[:1].clamp(-clamp, clamp) - ref_box).abs().max() < 1e-4
    assert (low[1:].clamp(-clamp, clamp) - ref_pt).abs().max() < 1e-4
    assert (pix[1:] - ref_pt_pix).abs().max() < 1e-3


@pytest.mark.parametrize("backend", ["sam1", "sam2.1", "hq-sam"])
def test_box_click_and_tag_objects_equal_the_official_predictor(backend, voc_root, tmp_path):
    """An image with a boxed object, a clicked one and one known from its tag only: three decoder calls
    (one per kind of prompt), each object's logits equal to the predictor's for its prompt; the
    tag-only object's to ``predict()`` with no prompt at all. The cross-image batched call agrees."""
    cfg = backend_cfg(backend, voc_root, tmp_path, data=dict(weak_labels=["boxes", "points", "tags"]))
    model, key = load_model(cfg.model, device=torch.device("cpu"))
    dataset = open_dataset(cfg)
    ann = dataset.load(dataset.ids[0])
    image = read_image(ann.image_path)
    boxed = int(ann.box_classes[0])
    clicked, tagged = [c for c in (3, 8, 12) if c != boxed][:2]
    click = np.array([[ann.width / 2, ann.height / 2]], np.float32)
    mixed = dataclasses.replace(ann, boxes=ann.boxes[:1], box_classes=ann.box_classes[:1], scribbles=None, points=click,
                                point_classes=np.array([clicked]), tags=np.array([boxed, clicked, tagged]))
    prepared, low, pix = pipeline_predictions(cfg, model, key, mixed, image)
    assert prepared.objects.classes.tolist() == [boxed, clicked, tagged]
    assert prepared.objects.promptless.tolist() == [False, False, True]
    assert [idx.tolist() for idx, _ in prepared.prompts.groups()] == [[0], [1], [2]]
    with torch.no_grad():
        ref_box, _ = official_predictions(backend, model, image, prepared.objects.boxes[:1])
        ref_pt, _ = official_predictions(backend, model, image, None, points=click[None], labels=np.ones((1, 1), np.float32))
        ref_none, ref_none_pix = official_predictions(backend, model, image, None)
    clamp = 32.0 if backend == "sam2.1" else float("inf")
    for got, ref in ((low[:1], ref_box), (low[1:2], ref_pt), (low[2:], ref_none)):
        assert (got.clamp(-clamp, clamp) - ref).abs().max() < 1e-4
    assert (pix[2:] - ref_none_pix).abs().max() < 1e-3
    # batched with a tag-only image: the prompt-less objects of both images share one call
    only_tag = dataclasses.replace(mixed, boxes=np.zeros((0, 4)), box_classes=np.zeros(0), points=np.zeros((0, 2)),
                                   point_classes=np.zeros(0), tags=np.array([tagged]))
    prep2 = prepare_image(only_tag, inputs=ImageInputs.from_config(cfg), encoder_size=key.encoder_size,
                          lowres=key.lowres_size, padded=key.padded)
    assert prep2.objects.promptless.tolist() == [True]
    features = model.encode([model.prepare_image(image)], device=torch.device("cpu"))
    runner = DecoderRunner(model, device=torch.device("cpu"))
    with torch.no_grad():
        batched = runner.batch_object_logits([prepared, prep2], [features, features])
    assert (batched[0] - low).abs().max() < 1e-4
    assert (batched[1].clamp(-clamp, clamp) - ref_none).abs().max() < 1e-4


@pytest.mark.parametrize("backend", ["sam1", "sam2.1"])
def test_bf16_autocast_masks_agree_with_fp32(backend, voc_root, tmp_path):
    """precision: bf16 (CPU autocast) against fp32 on the same images: the pseudo-mask pixels agree."""
    from stage1_pseudolabel.pipeline.predict import pseudo_mask

    cfg = backend_cfg(backend, voc_root, tmp_path)
    model, key = load_model(cfg.model, device=torch.device("cpu"))
    dataset = open_dataset(cfg)
    same = total = 0
    for image_id in dataset.ids:
        ann = dataset.load(image_id)
        image = read_image(ann.image_path)
        prepared, logits32, _ = pipeline_predictions(cfg, model, key, ann, image)
        _, logits16, _ = pipeline_predictions(cfg, model, key, ann, image, precision="bf16")
        assert logits16.dtype == torch.float32  # the loss and the masks read fp32 logits
        m32, m16 = pseudo_mask(prepared, logits32), pseudo_mask(prepared, logits16)
        same += int((m32 == m16).sum())
        total += m32.size
    assert same / total >= 0.99, same / total


# -- the pipeline end to end with each backend, caches, checkpoints -----------------------------------
@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from wsss.core.synthetic import write_dataset

    root = tmp_path_factory.mktemp("synthetic_backends") / "data"
    write_dataset(root, domain="target", num_train=3, num_val=1, seed=0, size_range=(120, 160))
    return root


@pytest.mark.parametrize("backend", ["sam2.1", "hq-sam"])
def test_stage1_runs_end_to_end_and_trains_only_the_decoder(backend, synthetic, tmp_path):
    from stage1_pseudolabel.pipeline.cache import CacheMismatchError, EmbeddingCache
    from stage1_pseudolabel.pipeline.embed import run_embed
    from stage1_pseudolabel.pipeline.generate import run_generate
    from stage1_pseudolabel.pipeline.train import run_train

    cfg = build_config(config_file=str(CONFIGS[backend]), overrides={"data.root": str(synthetic), "work_dir": str(tmp_path)},
                       cfg_options=["train.epochs=1", "train.batch_size=1", "train.checkpoint_every=10"])
    assert run_embed(cfg, progress=False)["embedded"] == 3
    model, key = load_model(cfg.model, device=torch.device("cpu"))
    cache = EmbeddingCache(cfg.cache_dir, key=key)
    ids = open_dataset(cfg).ids
    feats = cache.load(ids[0])
    shapes = model.feature_shapes()
    assert sorted(feats.names()) == sorted(shapes)
    assert all(tuple(feats[k].shape[1:]) == shapes[k] for k in shapes)
    stored = torch.load(cache.path(ids[0]), weights_only=True)
    assert stored["embedding"].dtype == torch.float16 and all(v.dtype == torch.float16 for v in stored["extra"].values())
    assert stored["meta"]["backend"] == backend and stored["meta"]["geometry"] == key.geometry

    # A cache made by another backend is refused.
    sam1 = build_config(config_file=str(CONFIGS["sam1"]), overrides={"data.root": str(synthetic), "work_dir": str(tmp_path)})
    with pytest.raises(CacheMismatchError, match="backend"):
        EmbeddingCache(sam1.cache_dir, key=load_model(sam1.model, device=torch.device("cpu"))[1])

    initial = {k: v.clone() for k, v in model.state_dict().items()}
    summary = run_train(cfg, progress=False)
    assert summary["steps"] == 3 and all(np.isfinite(summary["losses"]))
    final = torch.load(cfg.decoder_path(), weights_only=True)["mask_decoder"]
    assert set(final) == set(model.mask_decoder.state_dict())  # only the decoder is saved
    changed = [k for k, v in final.items() if not torch.equal(v, initial["mask_decoder." + k])]
    assert changed and all(not k.startswith(("conv_s0", "conv_s1")) for k in changed)  # cached projections stay
    out = run_generate(cfg, progress=False)
    assert out["written"] == 3 and not out["problems"]


def test_trainable_parameters_get_gradients(voc_root, tmp_path):
    """train.heads=single: every trainable parameter of each backend's decoder receives a gradient."""
    for backend in ("sam1", "sam2.1", "hq-sam"):
        cfg = backend_cfg(backend, voc_root, tmp_path, data=dict(max_images=1))
        model, key = load_model(cfg.model, device=torch.device("cpu"))
        ann = open_dataset(cfg).load(open_dataset(cfg).ids[0])
        features = model.encode([model.prepare_image(read_image(ann.image_path))], device=torch.device("cpu"))
        features = type(features)({k: v.clone() for k, v in features.tensors.items()})  # out of inference mode
        params = model.trainable_parameters(train_heads="single")
        assert params and all(p.requires_grad for p in params)
        assert not any(p.requires_grad for p in model.prompt_encoder.parameters())
        assert not any(p.requires_grad for p in model.image_encoder.parameters())
        prepared = prepare_image(ann, inputs=ImageInputs.from_config(cfg), encoder_size=key.encoder_size,
                                 lowres=key.lowres_size, padded=key.padded)
        DecoderRunner(model, device=torch.device("cpu")).object_logits(prepared, features).sum().backward()
        missing = [n for n, p in model.mask_decoder.named_parameters() if p.requires_grad and p.grad is None]
        assert not missing, (backend, missing)


@pytest.mark.parametrize("model_type", ["sam2.1_hiera_tiny", "hq_vit_b"])
def test_checkpoints_load_strictly_and_fail_clearly(model_type, tmp_path):
    from stage1_pseudolabel.sam.backends.build import build_backend
    from stage1_pseudolabel.sam.checkpoint import CheckpointError

    kwargs = build_config(config_file=str(CONFIGS["sam2.1" if model_type.startswith("sam2") else "hq-sam"])).model.kwargs
    a = build_backend(model_type, seed=1, **kwargs)
    path = tmp_path / "ckpt.pt"
    torch.save({"model": a.official.state_dict()}, path)  # the SAM 2 release format; plain dicts load too
    b = build_backend(model_type, checkpoint=path, **kwargs)
    assert all(torch.equal(v, b.official.state_dict()[k]) for k, v in a.official.state_dict().items())
    with pytest.raises(CheckpointError, match="does not exist.*official"):
        build_backend(model_type, checkpoint=tmp_path / "missing.pt", **kwargs)
    wrong = {k: v for k, v in list(a.official.state_dict().items())[1:]}
    torch.save(wrong, tmp_path / "wrong.pt")
    with pytest.raises(CheckpointError, match="does not fit model type"):
        build_backend(model_type, checkpoint=tmp_path / "wrong.pt", **kwargs)


# -- speed options -----------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["sam1", "hq-sam"])
def test_sdpa_attention_equals_the_eager_vit(backend, voc_root, tmp_path):
    """attention: sdpa (relative-position bias as an attention mask) against segment_anything's own."""
    from stage1_pseudolabel.sam.precision import autocast
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from stage1_pseudolabel.sam.sdpa import use_eager_attention, use_sdpa_attention

    cfg = backend_cfg(backend, voc_root, tmp_path, data=dict(max_images=2))
    model, _ = load_model(cfg.model, device=torch.device("cpu"))
    dataset = open_dataset(cfg)
    images = [model.prepare_image(read_image(dataset.load(i).image_path)) for i in dataset.ids]
    eager = model.encode(images, device=torch.device("cpu"))
    eager_bf16 = None
    with autocast("bf16", "cpu"):
        eager_bf16 = model.encode(images, device=torch.device("cpu"))
    assert use_sdpa_attention(model.image_encoder) == cfg.model.kwargs["encoder_depth"]
    # Only the fused kernel allowed: the call fails if it can reach no fused kernel (3-D inputs can't).
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        sdpa = model.encode(images, device=torch.device("cpu"))
        with autocast("bf16", "cpu"):
            sdpa_bf16 = model.encode(images, device=torch.device("cpu"))
    use_eager_attention(model.image_encoder)
    for name in eager.names():
        ref = eager[name]
        scale = float(ref.abs().max())
        assert (sdpa[name] - ref).abs().max() <= 1e-5 * max(scale, 1.0), name
        # bf16 has 8 mantissa bits: both attention forms are within bf16 rounding of fp32 and of each other
        assert (sdpa_bf16[name].float() - ref).abs().max() <= 0.05 * scale, name
        assert (sdpa_bf16[name].float() - eager_bf16[name].float()).abs().max() <= 0.05 * scale, name


def test_fused_attention_backend_refuses_the_3d_call():
    """The check above has teeth: the same attention with 3-D ``[B * heads, L, D]`` inputs and bias
    reaches no fused kernel, so under the flash-only backend it raises."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(2, 4, 64, 16)
    bias = torch.randn(2, 4, 64, 64)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        four_d = torch.nn.functional.scaled_dot_product_attention(q, q, q, attn_mask=bias)
        with pytest.raises(RuntimeError), pytest.warns(UserWarning):
            torch.nn.functional.scaled_dot_product_attention(*(q.reshape(8, 64, 16),) * 3, attn_mask=bias.reshape(8, 64, 64))
    ref = torch.nn.functional.scaled_dot_product_attention(*(q.reshape(8, 64, 16),) * 3, attn_mask=bias.reshape(8, 64, 64))
    assert torch.allclose(four_d.reshape(8, 64, 16), ref, atol=1e-5)


@pytest.mark.slow
def test_light_hq_sam_tinyvit_equals_its_predictor(voc_root, tmp_path):
    """hq_vit_tiny (MobileSAM's TinyViT + the HQ decoder; the package's TinyViT is 1024 px only, so
    this runs at the official size: slow on a CPU)."""
    cfg = backend_cfg("hq-sam", voc_root, tmp_path, data=dict(max_images=1), model=dict(type="hq_vit_tiny", kwargs={"_delete_": True}))
    model, key = load_model(cfg.model, device=torch.device("cpu"))
    ann = open_dataset(cfg).load(open_dataset(cfg).ids[0])
    image = read_image(ann.image_path)
    prepared, low, pix = pipeline_predictions(cfg, model, key, ann, image)
    with torch.no_grad():
        ref_low, ref_pix = official_predictions("hq-sam", model, image, prepared.objects.boxes)
    assert (low - ref_low).abs().max() < 1e-4 and ((pix > 0) == (ref_pix > 0)).float().mean() >= 0.9999


@pytest.mark.parametrize("backend", ["sam1", "sam2.1"])
def test_lora_adapters_train_alone_and_checkpoints_hold_only_them(backend, synthetic, tmp_path):
    from stage1_pseudolabel.pipeline.cache import EmbeddingCache
    from stage1_pseudolabel.pipeline.embed import run_embed
    from stage1_pseudolabel.pipeline.generate import run_generate
    from stage1_pseudolabel.pipeline.model import freeze_for_decoder_training, load_decoder
    from stage1_pseudolabel.pipeline.train import run_train
    from stage1_pseudolabel.sam.lora import lora_state_dict

    cfg = build_config(config_file=str(CONFIGS[backend]), overrides={"data.root": str(synthetic), "work_dir": str(tmp_path)},
                       cfg_options=["train.epochs=1", "train.batch_size=1", "train.checkpoint_every=10", "train.params=lora",
                                    "train.lora_rank=4", "train.lr=1e-2"])
    run_embed(cfg, progress=False)
    model, key = load_model(cfg.model, device=torch.device("cpu"))
    ids = open_dataset(cfg).ids
    ann = open_dataset(cfg).load(ids[0])
    prepared = prepare_image(ann, inputs=ImageInputs.from_config(cfg), encoder_size=key.encoder_size,
                             lowres=key.lowres_size, padded=key.padded)
    features = EmbeddingCache(cfg.cache_dir, key=key).load(ids[0])
    runner = DecoderRunner(model, device=torch.device("cpu"))
    with torch.no_grad():
        before = runner.object_logits(prepared, features)
    params = freeze_for_decoder_training(model, lora_rank=4)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith(("lora_A", "lora_B")) for n in trainable)
    assert len(params) == len(trainable)
    model.mask_decoder.eval()  # SAM 2's decoder reads another output in train mode (no stability fallback)
    with torch.no_grad():
        assert torch.equal(runner.object_logits(prepared, features), before)  # B = 0: unchanged at start

    run_train(cfg, progress=False)
    saved = torch.load(cfg.decoder_path(), weights_only=True)
    assert set(saved["mask_decoder"]) == set(lora_state_dict(model.mask_decoder))
    assert saved["meta"]["adapter"] == {"type": "lora", "rank": 4, "alpha": 16.0}
    fresh, _ = load_model(cfg.model, device=torch.device("cpu"))
    load_decoder(cfg.decoder_path(), model=fresh, key=key)
    with torch.no_grad():
        after = DecoderRunner(fresh, device=torch.device("cpu")).object_logits(prepared, features)
    assert not torch.allclose(after, before)
    assert run_generate(cfg, progress=False)["written"] == 3


def test_embed_shards_across_ranks_and_batches(synthetic, tmp_path, monkeypatch):
    """Under torchrun (RANK / WORLD_SIZE) each rank embeds its slice; batched encoding (SAM 2.1, two
    images per encoder call) caches what one image per call does, in files of the same size (a file
    holds its image's tensors, not the batch's)."""
    from stage1_pseudolabel.pipeline.cache import EmbeddingCache
    from stage1_pseudolabel.pipeline.embed import run_embed

    def cfg_for(work, batch):
        return build_config(config_file=str(CONFIGS["sam2.1"]), overrides={"data.root": str(synthetic), "work_dir": str(work)},
                            cfg_options=[f"embed.batch_size={batch}"])

    single = cfg_for(tmp_path / "one", 1)
    assert run_embed(single, progress=False)["embedded"] == 3
    batched = cfg_for(tmp_path / "ranks", 2)
    done = 0
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        done += run_embed(batched, progress=False)["embedded"]
    assert done == 3
    key = load_model(single.model, device=torch.device("cpu"))[1]
    a, b = EmbeddingCache(single.cache_dir, key=key), EmbeddingCache(batched.cache_dir, key=key)
    for image_id in open_dataset(single).ids:
        fa, fb = a.load(image_id), b.load(image_id)
        assert a.nbytes(image_id) == b.nbytes(image_id), image_id
        for name in fa.names():
            assert torch.allclose(fa[name], fb[name], atol=2e-3, rtol=1e-2), (image_id, name)


@pytest.mark.parametrize("precision,train_precision", [("bf16", None), ("fp16", None), ("fp16", "fp32")])
def test_half_precision_training_runs_with_an_fp32_loss(synthetic, tmp_path, precision, train_precision):
    """bf16 and fp16 train (autocast of the decoder, the loss in fp32); fp16 scales its loss with a
    gradient scaler whose state the checkpoint keeps for --resume (bf16 needs none); train_precision
    fp32 trains without autocast whatever ``precision`` (no scaler)."""
    from stage1_pseudolabel.pipeline.embed import run_embed
    from stage1_pseudolabel.pipeline.train import run_train

    cfg = build_config(config_file=str(CONFIGS["sam1"]), overrides={"data.root": str(synthetic), "work_dir": str(tmp_path)},
                       cfg_options=["train.epochs=1", "train.batch_size=1", "train.checkpoint_every=10", f"model.precision={precision}",
                                    f"train.precision={train_precision or 'null'}"])
    run_embed(cfg, progress=False)
    summary = run_train(cfg, progress=False)
    assert summary["steps"] == 3 and all(np.isfinite(summary["losses"]))
    state = torch.load(cfg.decoder_dir / "last.pth", map_location="cpu", weights_only=True)
    if (train_precision or precision) == "fp16":
        assert state["scaler"]["scale"] > 1 and state["scaler"]["_growth_tracker"] >= 0
    else:
        assert state["scaler"] == {}


def test_square_frame_is_sam2_transforms():
    """SamFrame(padded=False): prompts as SAM2Transforms.transform_boxes, masks as its postprocess_masks,
    every low-res cell is image."""
    from stage1_pseudolabel.sam.modeling import sam2_package
    from wsss.core.frames import SamFrame

    sam2_package()
    from sam2.utils.transforms import SAM2Transforms

    t = SAM2Transforms(resolution=1024, mask_threshold=0.0)
    frame = SamFrame(height=281, width=500, padded=False)
    boxes = np.array([[10.0, 20.5, 300.0, 281.0], [0.0, 0.0, 500.0, 1.0]], np.float32)
    ref = t.transform_boxes(torch.as_tensor(boxes), normalize=True, orig_hw=(281, 500)).reshape(-1, 4)
    assert np.allclose(frame.boxes_to_sam(boxes), ref.numpy(), atol=1e-4)
    logits = torch.randn(2, 256, 256)
    assert torch.allclose(frame.lowres_to_pixels(logits), t.postprocess_masks(logits[:, None], (281, 500))[:, 0], atol=1e-6)
    assert frame.valid_lowres().all() and frame.resized_hw == (1024, 1024)
    padded = SamFrame(height=281, width=500)
    assert padded.resized_hw == (575, 1024) and not padded.valid_lowres().all()
