"""The variant table and SAM 1 building: strict round trip, truncated files, wrong variants, safety,
and the table as what ``make weights``, the download script and ``make stage1`` read."""

from __future__ import annotations

import importlib.util
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stage1_pseudolabel.sam.backends.loading import describe_state_dict
from stage1_pseudolabel.sam.backends.sam1 import (
    build_sam,
    default_global_attn_indexes,
    encoder_input_size,
    lowres_mask_size,
    sam_architecture,
)
from stage1_pseudolabel.sam.backends.variants import MODEL_TYPES, SAM1, VARIANTS, main as variants_main
from stage1_pseudolabel.sam.checkpoint import CheckpointError, checkpoint_fingerprint, read_state_dict

REPO = Path(__file__).resolve().parents[2]
OFFICIAL_CHECKPOINTS_URL = SAM1.published_at

TINY = dict(image_size=256, encoder_depth=2, encoder_embed_dim=64, encoder_num_heads=2, window_size=8,
            prompt_embed_dim=64, decoder_mlp_dim=128)


@pytest.fixture(scope="module")
def vit_b_file(tmp_path_factory):
    """A full-size vit_b with seeded random weights, saved as a plain state dict (like the official file)."""
    model = build_sam("vit_b", seed=0)
    path = tmp_path_factory.mktemp("ckpt") / "sam_vit_b_random.pth"
    torch.save(model.state_dict(), path)
    return path, model


def test_vit_b_strict_round_trip(vit_b_file):
    path, model = vit_b_file
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(93.7e6, rel=0.01)  # SAM vit_b
    loaded = build_sam("vit_b", checkpoint=path)
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not loaded.training
    assert encoder_input_size(loaded) == 1024 and lowres_mask_size(loaded) == 256
    assert describe_state_dict(a) == "vit_b (ViT width 768, 12 blocks)"


def test_truncated_checkpoint_is_a_clear_error(vit_b_file, tmp_path):
    path, _ = vit_b_file
    cut = tmp_path / "cut.pth"
    with open(path, "rb") as src:
        cut.write_bytes(src.read(path.stat().st_size // 3))
    with pytest.raises(CheckpointError, match="truncated") as err:
        build_sam("vit_b", checkpoint=cut)
    assert OFFICIAL_CHECKPOINTS_URL in str(err.value)


def test_wrong_variant_says_what_the_file_looks_like(vit_b_file):
    path, _ = vit_b_file
    # A model of another size: the file is refused and identified as vit_b, nothing half-loads.
    with pytest.raises(CheckpointError, match=r"looks like vit_b \(ViT width 768, 12 blocks\)") as err:
        build_sam("vit_b", checkpoint=path, **TINY)
    assert OFFICIAL_CHECKPOINTS_URL in str(err.value)


def test_describe_other_variants_from_shapes():
    def fake(width, depth, prefix="image_encoder.blocks"):
        sd = {"image_encoder.patch_embed.proj.weight": torch.empty(width, 3, 16, 16),
              "image_encoder.pos_embed": torch.empty(1, 64, 64, width)}
        sd.update({f"{prefix}.{i}.norm1.weight": torch.empty(1) for i in range(depth)})
        return sd

    assert describe_state_dict(fake(1280, 32)).startswith("vit_h")
    assert describe_state_dict(fake(1024, 24)).startswith("vit_l")
    assert describe_state_dict(fake(768, 12)).startswith("vit_b")
    assert "custom-size" in describe_state_dict(fake(64, 2))
    assert describe_state_dict({"image_encoder.layers.0.x": torch.empty(1)}).startswith("vit_t")
    assert "decoder-only" in describe_state_dict({"mask_decoder.iou_token.weight": torch.empty(1)})


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist") as err:
        build_sam("vit_h", checkpoint=tmp_path / "nope.pth")
    assert "sam_vit_h_4b8939.pth" in str(err.value) and OFFICIAL_CHECKPOINTS_URL in str(err.value)


def test_reduced_model_round_trip_and_wrapped_state_dict(tmp_path):
    model = build_sam("vit_b", seed=3, **TINY)
    assert encoder_input_size(model) == 256 and lowres_mask_size(model) == 64
    path = tmp_path / "tiny.pth"
    torch.save({"model": model.state_dict()}, path)  # training checkpoints often wrap the weights
    loaded = build_sam("vit_b", checkpoint=path, **TINY)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    # Seeded: same seed same weights, and the global RNG is left alone.
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    again = build_sam("vit_b", seed=3, **TINY)
    assert torch.equal(torch.rand(1), before)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert checkpoint_fingerprint(path) == checkpoint_fingerprint(path)


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"a": Evil()}, f, protocol=2)
    with pytest.raises(CheckpointError):
        read_state_dict(path)


def test_variant_table_matches_segment_anything():
    from segment_anything import sam_model_registry

    vits = [v for v in VARIANTS.values() if v.backend == "sam1" and v.architecture is not None]
    assert [v.name for v in vits] == ["vit_h", "vit_l", "vit_b"]
    for v in vits:
        assert v.config in sam_model_registry
        arch = v.architecture
        assert default_global_attn_indexes(arch.encoder_depth) == arch.encoder_global_attn_indexes
    with pytest.raises(ValueError, match="unknown model type"):
        build_sam("vit_x")
    with pytest.raises(ValueError, match="build_backend"):
        build_sam("hq_vit_b")
    with pytest.raises(ValueError):
        sam_architecture("vit_b", image_size=250)


def test_one_row_per_model_type_with_its_backend_file_and_url():
    from stage1_pseudolabel.pipeline.config import build_config
    from stage1_pseudolabel.sam.backends.build import BACKENDS

    assert MODEL_TYPES == tuple(VARIANTS) and {v.backend for v in VARIANTS.values()} == set(BACKENDS)
    for name, v in VARIANTS.items():
        assert v.name == name and v.backend in BACKENDS and v.checkpoint_file
        assert v.checkpoint_url is None or v.checkpoint_url.endswith("/" + v.checkpoint_file), name
        build_config(overrides={"model.type": name})  # every model type is a valid --model-type
    # HQ-SAM's ViTs are SAM 1's; the official files of both, and of SAM 2.1, are the published ones
    for size in "hlb":
        assert VARIANTS[f"hq_vit_{size}"].architecture == VARIANTS[f"vit_{size}"].architecture
    assert VARIANTS["hq_vit_tiny"].checkpoint_url == "https://huggingface.co/lkeab/hq-sam/resolve/main/sam_hq_vit_tiny.pth"
    assert VARIANTS["vit_b"].checkpoint_url == "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth"
    assert VARIANTS["sam2.1_hiera_base_plus"].checkpoint_url == (
        "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_base_plus.pt")
    assert VARIANTS["proxy"].checkpoint_url is None


def test_the_command_line_prints_one_column(capsys):
    assert variants_main(["--file", "hq_vit_tiny"]) == 0 and capsys.readouterr().out == "sam_hq_vit_tiny.pth\n"
    assert variants_main(["--url", "vit_h"]) == 0
    assert capsys.readouterr().out.strip() == VARIANTS["vit_h"].checkpoint_url
    assert variants_main(["--url", "proxy"]) == 1 and "make proxy-sam" in capsys.readouterr().err
    assert variants_main(["--file", "vit_x"]) == 2 and "unknown model type" in capsys.readouterr().err
    assert variants_main(["--list"]) == 0 and capsys.readouterr().out.split() == list(MODEL_TYPES)


def _run(cmd, **env):
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, **env})


def test_download_script_reads_the_table():
    """Its dry run prints each model type's URL and file from the table; the proxy and unknown names fail."""
    for name, v in VARIANTS.items():
        out = _run(["bash", "scripts/download_sam_weights.sh", "--dry-run", name, "ckpts"], PYTHON=sys.executable)
        if v.checkpoint_url is None:
            assert out.returncode == 2 and v.release.published_at in out.stderr, (name, out.stderr)
        else:
            assert out.returncode == 0 and out.stdout.strip() == f"{v.checkpoint_url} -> ckpts/{v.checkpoint_file}", name
    out = _run(["bash", "scripts/download_sam_weights.sh", "--dry-run", "vit_x"], PYTHON=sys.executable)
    assert out.returncode == 2 and "unknown model type" in out.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_reads_checkpoint_files_from_the_table():
    for name in ("hq_vit_tiny", "sam2.1_hiera_small", "proxy"):
        out = _run(["make", "-n", "stage1-embed", f"SAM_MODEL={name}"])
        assert out.returncode == 0, out.stderr
        assert f"--checkpoint data/checkpoints/{VARIANTS[name].checkpoint_file}" in out.stdout, out.stdout
    out = _run(["make", "-n", "weights", "SAM_MODEL=hq_vit_tiny"])
    assert out.returncode == 0 and "download_sam_weights.sh hq_vit_tiny data/checkpoints" in out.stdout


def test_vit_t_needs_mobile_sam():
    if importlib.util.find_spec("mobile_sam") is not None:
        pytest.skip("mobile_sam is installed")
    with pytest.raises(ImportError, match="mobile_sam"):
        build_sam("vit_t")


def test_proxy_resolves_lazily(tmp_path):
    model = build_sam("proxy", seed=0)
    for part in ("image_encoder", "prompt_encoder", "mask_decoder"):
        assert hasattr(model, part)
    # The proxy goes through the same strict checkpoint path as official weights.
    path = tmp_path / "proxy.pth"
    torch.save(model.state_dict(), path)
    loaded = build_sam("proxy", checkpoint=path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def _bytes_read() -> int:
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar:")).split()[1])


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/io"), reason="needs Linux /proc/self/io")
def test_a_build_without_encoder_neither_initialises_nor_reads_it(vit_b_file, monkeypatch):
    """Training builds SAM 1 with encoder=False: the ViT is made on the meta device (no random
    initialisation) and the checkpoint is mapped, not read; the parts training uses equal the file's."""
    from stage1_pseudolabel.sam.backends import sam1

    path, model = vit_b_file
    devices = []
    real = sam1.build_sam_from_architecture
    monkeypatch.setattr(sam1, "build_sam_from_architecture",
                        lambda arch, **k: (devices.append(k.get("encoder_device")), real(arch, **k))[1])
    size = path.stat().st_size
    before = _bytes_read()
    full = build_sam("vit_b", checkpoint=path)
    full_read = _bytes_read() - before
    before = _bytes_read()
    lazy = build_sam("vit_b", checkpoint=path, encoder=False)
    lazy_read = _bytes_read() - before
    assert devices == [None, "meta"]
    assert full_read > 0.9 * size and lazy_read < 0.05 * size, (full_read, lazy_read, size)
    for part in ("prompt_encoder", "mask_decoder"):
        a, b = getattr(full, part).state_dict(), getattr(lazy, part).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_load_model_without_encoder_has_the_same_cache_key(vit_b_file, tmp_path):
    from stage1_pseudolabel.pipeline.config import build_config
    from stage1_pseudolabel.pipeline.model import load_model

    path, _ = vit_b_file
    cfg = build_config(overrides={"model.type": "vit_b", "model.checkpoint": str(path), "work_dir": str(tmp_path)})
    with_encoder, key = load_model(cfg.model, device=torch.device("cpu"))
    without, key_without = load_model(cfg.model, device=torch.device("cpu"), encoder=False)
    assert key_without == key and without.image_encoder is None and with_encoder.image_encoder is not None
