"""The prepared benchmark scripts run: the GPU check in its dry mode, the demo's spread table."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_dry_run_writes_every_figure(tmp_path):
    gpu_check = load("gpu_check")
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--dry", "--images", "4", "--steps", "2", "--work-dir", str(tmp_path / "w"),
                           "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = {(r["precision"], r["attention"], r["batch"]) for r in result["encoder"]}
    assert rows == {(p, a, b) for p in ("fp32", "bf16") for a in ("eager", "sdpa") for b in (1, 2)}
    assert all(r["img_per_s"] > 0 for r in result["encoder"])
    fig = result["pipeline"]
    assert fig["train_steps"] == 2 and fig["prepare_seconds"] > 0 and fig["syncs_per_step"] is None  # CPU
    phases = [fig[f"train_{p}_median_s"] for p in ("fetch", "forward_backward", "optimizer", "read")]
    assert min(phases) >= 0 and fig["train_forward_backward_median_s"] > 0
    # a cache file holds one image (64 x 16 x 16 fp16 = 32 KiB), not the batch of 8
    assert 0.03 < fig["cache_mb_per_image"] < 0.04
    # two precisions really ran (their embeddings differ), and their masks mostly agree
    import torch

    caches = [sorted((tmp_path / "w" / f"agree_{p}" / "embeddings").glob("*.pt")) for p in ("fp32", "bf16")]
    emb = [torch.load(c[0], weights_only=True)["embedding"].float() for c in caches]
    assert not torch.equal(emb[0], emb[1]) and torch.allclose(emb[0], emb[1], atol=0.1)
    assert 0.9 <= result["targets"]["bf16_pixel_agreement"] <= 1.0
    minutes = gpu_check.voc_estimate_minutes(10.0, 20.0, 40.0, epochs=4)
    assert minutes == pytest.approx((10_582 / 10 + 4 * 10_582 / 20 + 10_582 / 40) / 60)


def test_demo_spread_reads_every_figure_and_its_range():
    spread = load("demo_spread")
    assert spread.parse_runs("0:2,1:1,3") == [(0, 2), (1, 1), (3, 2)]
    report = {"pseudo_masks": {"methods": {"zero-shot": {"mIoU": 70.0}, "fine-tuned": {"mIoU": 80.5}}},
              "instances": {"methods": {"zero-shot": {"AP": 50.0}, "fine-tuned": {"AP": 60.0}}},
              "stage2": {"methods": {}}, "model": {"proxy held-out object IoU (source / target)": "77.8 / 65.9"}}
    fig = spread.figures(report)
    assert fig["gap mIoU fine-tuned - zero-shot"] == pytest.approx(10.5)
    assert fig["gap AP fine-tuned - zero-shot"] == pytest.approx(10.0)
    assert fig["proxy IoU target"] == 65.9
