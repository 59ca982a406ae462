"""The torchvision stand-in: used only where torchvision is missing or broken, and correct there."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from stage1_pseudolabel.sam import torchvision_compat as tvc


def _run(code: str, *, pythonpath: str = "") -> str:
    env = {"PYTHONPATH": pythonpath} if pythonpath else {}
    import os

    full_env = {**os.environ, **env}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=full_env)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_segment_anything_imports_without_torchvision():
    out = _run(
        """
        from stage1_pseudolabel.sam.modeling import sam_modeling; sam_modeling()
        from stage1_pseudolabel.sam.torchvision_compat import using_stand_in
        import numpy as np
        from segment_anything.utils.transforms import ResizeLongestSide
        from segment_anything import SamAutomaticMaskGenerator  # imports torchvision.ops
        print(using_stand_in(), ResizeLongestSide(1024).apply_image(np.zeros((281, 500, 3), np.uint8)).shape)
        """
    )
    has_torchvision = subprocess.run([sys.executable, "-c", "import torchvision"], capture_output=True).returncode == 0
    stand_in, shape = out.split(" ", 1)
    assert shape == "(575, 1024, 3)"
    if not has_torchvision:
        assert stand_in == "True"


def test_broken_torchvision_is_replaced(tmp_path):
    # A torchvision that imports but whose compiled op is missing, as with a CPU/CUDA mismatch.
    pkg = tmp_path / "torchvision"
    (pkg / "ops").mkdir(parents=True)
    (pkg / "transforms").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "transforms" / "__init__.py").write_text("")
    (pkg / "transforms" / "functional.py").write_text("def resize(*a, **k): pass\ndef to_pil_image(*a): pass\n")
    (pkg / "ops" / "__init__.py").write_text("")
    (pkg / "ops" / "boxes.py").write_text(
        "def box_area(b): pass\n"
        "def batched_nms(*a):\n    raise RuntimeError('operator torchvision::nms does not exist')\n"
    )
    out = _run(
        """
        from stage1_pseudolabel.sam.modeling import sam_modeling; sam_modeling()
        import torchvision
        from torchvision.ops.boxes import batched_nms
        import torch
        print(torchvision.__version__, batched_nms(torch.tensor([[0., 0, 1, 1]]), torch.ones(1), torch.zeros(1, dtype=torch.long), 0.5).tolist())
        """,
        pythonpath=str(tmp_path),
    )
    assert out == "0.0.0+wsss-stand-in [0]"


def _reference_nms(boxes, scores, idxs, thr):
    order = sorted(range(len(boxes)), key=lambda i: -float(scores[i]))
    keep = []
    for i in order:
        ok = True
        for j in keep:
            if idxs[i] != idxs[j]:
                continue
            lt = torch.maximum(boxes[i, :2], boxes[j, :2])
            rb = torch.minimum(boxes[i, 2:], boxes[j, 2:])
            inter = (rb - lt).clamp(min=0).prod()
            union = tvc.box_area(boxes[i : i + 1])[0] + tvc.box_area(boxes[j : j + 1])[0] - inter
            if inter / union > thr:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


@pytest.mark.parametrize("seed", range(5))
def test_batched_nms_matches_greedy_reference(seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(30, 2, generator=g) * 50
    wh = torch.rand(30, 2, generator=g) * 30 + 1
    boxes = torch.cat([xy, xy + wh], 1)
    scores = torch.rand(30, generator=g)
    idxs = torch.randint(0, 3, (30,), generator=g)
    assert tvc.batched_nms(boxes, scores, idxs, 0.4).tolist() == _reference_nms(boxes, scores, idxs, 0.4)


def test_resize_and_to_pil_image():
    arr = (np.arange(20 * 30 * 3) % 251).astype(np.uint8).reshape(20, 30, 3)
    pil = tvc.to_pil_image(arr)
    assert isinstance(pil, Image.Image) and pil.size == (30, 20)
    out = np.asarray(tvc.resize(pil, (40, 60)))
    assert out.shape == (40, 60, 3)
    np.testing.assert_array_equal(out, np.asarray(pil.resize((60, 40), Image.BILINEAR)))
    t = torch.rand(3, 20, 30)
    assert tvc.resize(t, (10, 15)).shape == (3, 10, 15)
    assert np.asarray(tvc.to_pil_image(torch.ones(3, 4, 5))).max() == 255
