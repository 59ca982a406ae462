"""Every stage-1 backend against its official predictor, on real VOC images.

For each backend (SAM 1 ``SamPredictor``, SAM 2.1 ``SAM2ImagePredictor``, HQ-SAM's ``SamPredictor``),
with seeded random weights at reduced size (the official architecture code, smaller widths and
depths, 256 px input), the pipeline's zero-shot low-res logits for the images' box prompts
(``load_model`` -> ``encode`` -> ``prepare_image`` -> ``DecoderRunner.object_logits``) equal the
predictor's (max abs diff < 1e-4) and the pixel masks agree.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from stage1_pseudolabel.pipeline.config import build_config
from stage1_pseudolabel.pipeline.model import load_model
from stage1_pseudolabel.pipeline.predict import DecoderRunner
from stage1_pseudolabel.pipeline.prepare import open_dataset, prepare_image
from wsss.core.weak_labels.images import read_image

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

CONFIGS = {
    "sam1": REPO_ROOT / "configs/stage1/tiny_random.yaml",
    "sam2.1": REPO_ROOT / "configs/stage1/tiny_random_sam2.yaml",
    "hq-sam": REPO_ROOT / "configs/stage1/tiny_random_hq.yaml",
}
NUM_IMAGES = 3


def backend_cfg(backend: str, voc_root, tmp_path, **sets):
    options = [f"{k}={json.dumps(v)}" for k, v in {"max_images": NUM_IMAGES, "prompt_mode": "box", **sets}.items()]
    return build_config(config_file=str(CONFIGS[backend]),
                        overrides={"data": str(voc_root), "split": "train", "work_dir": str(tmp_path)},
                        cfg_options=options)


def official_predictions(backend: str, model, image: np.ndarray, boxes: np.ndarray):
    """Low-res logits ``[N, L, L]`` and pixel logits ``[N, H, W]`` of the official predictor."""
    n = len(boxes)
    if backend == "sam2.1":
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        predictor = SAM2ImagePredictor(model.official)
        s = model.encoder_size  # the predictor's feature sizes are written for 1024 px; reduced size here
        predictor._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]
        predictor.set_image(image)
        masks, _, low = predictor.predict(box=boxes, multimask_output=False, return_logits=True)
        return torch.as_tensor(low).reshape(n, *low.shape[-2:]), torch.as_tensor(masks).reshape(n, *masks.shape[-2:])
    if backend == "hq-sam":
        from segment_anything_hq import SamPredictor

        extra = {"hq_token_only": False}
    else:
        from segment_anything import SamPredictor

        extra = {}
    predictor = SamPredictor(model.official)
    predictor.set_image(image)
    b = predictor.transform.apply_boxes_torch(torch.as_tensor(boxes, dtype=torch.float32), image.shape[:2])
    masks, _, low = predictor.predict_torch(None, None, boxes=b, multimask_output=False, return_logits=True, **extra)
    return low[:, 0], masks[:, 0]


def pipeline_predictions(cfg, model, key, ann, image, *, precision="fp32"):
    prepared = prepare_image(ann, cfg, encoder_size=key.encoder_size, lowres=key.lowres_size, padded=key.padded)
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
    model, key = load_model(cfg, device=torch.device("cpu"))
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


@pytest.mark.parametrize("backend", ["sam1", "sam2.1"])
def test_bf16_autocast_masks_agree_with_fp32(backend, voc_root, tmp_path):
    """precision: bf16 (CPU autocast) against fp32 on the same images: the pseudo-mask pixels agree."""
    from stage1_pseudolabel.pipeline.predict import pseudo_mask

    cfg = backend_cfg(backend, voc_root, tmp_path)
    model, key = load_model(cfg, device=torch.device("cpu"))
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
