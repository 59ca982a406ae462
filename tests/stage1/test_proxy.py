"""The proxy SAM (a stand-in for pretrained SAM): architecture, loading path, pretraining and caching."""

from __future__ import annotations

import json

import pytest
import torch

from stage1_pseudolabel.sam.proxy import DEFAULT_CONFIG, build_proxy_sam
from stage1_pseudolabel.proxy.train_proxy import (
    ProxyTrainConfig,
    batch_loss,
    decode_batch,
    ensure_proxy_checkpoint,
    is_cached,
    make_sample,
    sidecar_path,
)
from stage1_pseudolabel.sam.encoder import preprocess
from stage1_pseudolabel.sam.backends.sam1 import build_sam, encoder_input_size, lowres_mask_size


def test_proxy_is_a_segment_anything_sam_with_sam_frames():
    from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam

    model = build_proxy_sam()
    assert isinstance(model, Sam)
    assert isinstance(model.prompt_encoder, PromptEncoder) and isinstance(model.mask_decoder, MaskDecoder)
    size = DEFAULT_CONFIG["image_size"]
    emb = size // DEFAULT_CONFIG["encoder_stride"]
    assert encoder_input_size(model) == size and lowres_mask_size(model) == 4 * emb
    with torch.no_grad():
        e = model.image_encoder(torch.zeros(1, 3, size, size))
    assert e.shape == (1, 256, emb, emb)
    sparse, dense = model.prompt_encoder(points=None, boxes=torch.tensor([[10.0, 10.0, 60.0, 50.0]]), masks=None)
    with torch.no_grad():
        masks, iou = model.mask_decoder(e, model.prompt_encoder.get_dense_pe(), sparse, dense, False)
    assert masks.shape == (1, 1, 4 * emb, 4 * emb) and iou.shape == (1, 1)


def test_proxy_loads_through_the_sam1_builder_strictly(tmp_path):
    torch.manual_seed(0)
    model = build_proxy_sam()
    path = tmp_path / "proxy.pth"
    torch.save(model.state_dict(), path)
    loaded = build_sam("proxy", checkpoint=path)
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    bad = dict(model.state_dict())
    bad.pop(next(iter(bad)))
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(Exception):
        build_sam("proxy", checkpoint=tmp_path / "bad.pth")


def test_batched_training_decoder_matches_sam_decoder():
    cfg = ProxyTrainConfig()
    model = build_proxy_sam(**cfg.model).eval()
    for mode in ("both", "box", "points"):
        s = make_sample(cfg, domain="source", split="train", index=1, mode=mode)
        with torch.no_grad():
            emb = model.image_encoder(preprocess(model, [s.image]))
            a, _ = decode_batch(model, emb, [s], multimask=False)
            points = None if s.coords is None else (s.coords, s.labels)
            sp, de = model.prompt_encoder(points=points, boxes=s.boxes, masks=None)
            b, _ = model.mask_decoder(emb, model.prompt_encoder.get_dense_pe(), sp, de, False)
        assert torch.allclose(a, b, atol=1e-5), mode


def test_samples_are_seeded_and_targets_are_in_the_lowres_frame():
    cfg = ProxyTrainConfig()
    a = make_sample(cfg, domain="source", split="train", index=3)
    b = make_sample(cfg, domain="source", split="train", index=3)
    assert torch.equal(a.image, b.image) and torch.equal(a.targets, b.targets)
    low = 4 * cfg.model["image_size"] // cfg.model["encoder_stride"]
    assert a.targets.shape[1:] == (low, low)
    assert float(a.targets.min()) >= 0 and float(a.targets.max()) <= 1 and float(a.targets.max()) > 0.5
    assert not a.targets[:, ~a.valid].any()


def test_a_few_steps_reduce_the_loss_and_the_checkpoint_is_cached(tmp_path, capsys):
    torch.set_num_threads(1)
    cfg = ProxyTrainConfig(steps=6, batch_images=2, eval_scenes=2, warmup_steps=1, lr=3e-3,
                           prompt_mix={"box": 1.0})
    fixed = [make_sample(cfg, domain="source", split="train", index=i) for i in range(2)]
    model = build_proxy_sam(**cfg.model)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(6):
        loss, _ = batch_loss(model, model.image_encoder(preprocess(model, [s.image for s in fixed])), fixed, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]

    out = tmp_path / "proxy_sam.pth"
    ensure_proxy_checkpoint(out, cfg, progress=False)
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["model_type"] == "proxy" and "stand-in" in meta["description"]
    assert meta["seed"] == 0 and meta["build_kwargs"]["image_size"] == cfg.model["image_size"]
    assert 0 <= meta["summary"]["val_object_iou_target"] <= 100
    assert is_cached(out, cfg)
    mtime = out.stat().st_mtime_ns
    capsys.readouterr()
    ensure_proxy_checkpoint(out, cfg, progress=False)
    assert "nothing to do" in capsys.readouterr().out and out.stat().st_mtime_ns == mtime
    assert not is_cached(out, ProxyTrainConfig(steps=7, batch_images=2, eval_scenes=2))
    model = build_sam("proxy", checkpoint=out)  # the same path as an official checkpoint
    assert encoder_input_size(model) == cfg.model["image_size"]
