"""VOC palette masks: round trip, validation, and the atomic writer under simulated interruptions."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

import wsss.core.masks as masks
from wsss.core.masks import read_mask, validate_mask_dir, write_mask
from wsss.core.weak_labels import InvalidMaskError, SizeMismatchError, voc_palette


def _mask(seed: int = 0, shape=(13, 17)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.integers(0, 21, shape).astype(np.uint8)
    m[0, :3] = 255
    return m


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(masks.TEMP_SUFFIX))


def test_round_trip_is_palette_png(tmp_path):
    m = _mask()
    path = write_mask(tmp_path / "sub" / "x.png", m)
    with Image.open(path) as img:
        assert img.mode == "P"
        np.testing.assert_array_equal(np.asarray(img.getpalette(), np.uint8).reshape(-1, 3)[:256], voc_palette())
    np.testing.assert_array_equal(read_mask(path, height=13, width=17), m)
    with pytest.raises(SizeMismatchError, match="x.png"):
        read_mask(path, height=13, width=18)
    assert _leftovers(path.parent) == []


def test_write_refuses_invalid_masks(tmp_path):
    bad = _mask()
    bad[3, 3] = 42
    with pytest.raises(InvalidMaskError, match=r"y\.png.*42"):
        write_mask(tmp_path / "y.png", bad)
    with pytest.raises(InvalidMaskError, match="shape"):
        write_mask(tmp_path / "y.png", np.zeros((2, 3, 3), np.uint8))
    assert not (tmp_path / "y.png").exists() and _leftovers(tmp_path) == []
    # int64 masks with valid values are fine
    write_mask(tmp_path / "z.png", _mask().astype(np.int64))
    np.testing.assert_array_equal(read_mask(tmp_path / "z.png"), _mask())


class _Interrupted(Exception):
    pass


def _save_half_then_die(self, fp, *args, **kwargs):
    fp.write(b"\x89PNG\r\n\x1a\n partial")  # some bytes reach the temp file, then the job dies
    raise _Interrupted()


@pytest.mark.parametrize("old", [False, True])
def test_interrupted_during_encoding(tmp_path, monkeypatch, old):
    target = tmp_path / "m.png"
    if old:
        write_mask(target, _mask(1))
    monkeypatch.setattr(Image.Image, "save", _save_half_then_die)
    with pytest.raises(_Interrupted):
        write_mask(target, _mask(2))
    monkeypatch.undo()
    if old:
        np.testing.assert_array_equal(read_mask(target), _mask(1))  # the old complete file
    else:
        assert not target.exists()
    assert _leftovers(tmp_path) == []
    assert validate_mask_dir(tmp_path) == []


@pytest.mark.parametrize("old", [False, True])
def test_interrupted_before_rename(tmp_path, monkeypatch, old):
    target = tmp_path / "m.png"
    if old:
        write_mask(target, _mask(1))

    def die(src, dst):
        assert os.path.getsize(src) > 0  # the new file was complete in its temporary place
        raise KeyboardInterrupt()

    monkeypatch.setattr(os, "replace", die)
    with pytest.raises(KeyboardInterrupt):
        write_mask(target, _mask(2))
    monkeypatch.undo()
    if old:
        np.testing.assert_array_equal(read_mask(target), _mask(1))
    else:
        assert not target.exists()
    assert _leftovers(tmp_path) == []


def test_validate_mask_dir(tmp_path):
    preds, gts = tmp_path / "pred", tmp_path / "gt"
    for i in ("a", "b", "c", "d"):
        write_mask(gts / f"{i}.png", _mask())
    write_mask(preds / "a.png", _mask())
    write_mask(preds / "b.png", _mask(shape=(13, 16)))  # wrong size
    Image.fromarray(np.full((13, 17), 99, np.uint8)).save(preds / "d.png")  # bad values
    (preds / ".e.png.x1y2.tmp").write_bytes(b"half")  # leftover of a killed writer
    problems = validate_mask_dir(preds, ids=["a", "b", "c", "d"], gt_dir=gts)
    kinds = {p.image_id: p.kind for p in problems}
    assert kinds == {"b": "SizeMismatchError", "c": "MissingFileError", "d": "InvalidMaskError",
                     ".e.png.x1y2.tmp": "TemporaryFile"}
    assert all(p.path is not None and p.path.name in p.message for p in problems)
    assert validate_mask_dir(preds, ids=["a"]) == [problems[-1]]
    (gts / "a.png").unlink()
    assert [p.path for p in validate_mask_dir(preds, ids=["a"], gt_dir=gts)][0] == gts / "a.png"


def test_json_outputs_are_atomic(tmp_path):
    import json

    from wsss.core.atomic import write_json

    out = tmp_path / "sub" / "report.json"
    write_json(out, {"b": 1, "a": np.float32(0.5)}, sort_keys=True)
    assert json.loads(out.read_text()) == {"a": "0.5", "b": 1} and out.read_text().startswith('{\n  "a"')
    with pytest.raises(TypeError):  # unserialisable: the old file stays, no temporary file is left
        write_json(out, {"x": object()}, default=lambda o: (_ for _ in ()).throw(TypeError("no")))
    assert json.loads(out.read_text())["b"] == 1 and sorted(p.name for p in out.parent.iterdir()) == ["report.json"]
