"""wsss-stage2-submit: test predictions in the layout and tar the PASCAL VOC evaluation server takes."""

from __future__ import annotations

import tarfile

import numpy as np
from PIL import Image

from stage2_segnet.submit import main
from wsss.core.masks import read_mask, write_mask

IDS = ["2008_000001", "2008_000002"]


def test_predictions_packed_checked_and_named(tmp_path, capsys):
    data = tmp_path / "VOC2012"
    (data / "ImageSets/Segmentation").mkdir(parents=True)
    (data / "ImageSets/Segmentation/test.txt").write_text("".join(f"{i}\n" for i in IDS))
    preds = tmp_path / "preds"
    expected = {}
    for k, image_id in enumerate(IDS):
        (data / "JPEGImages").mkdir(exist_ok=True)
        Image.fromarray(np.zeros((20 + k, 30, 3), np.uint8)).save(data / "JPEGImages" / f"{image_id}.jpg")
        expected[image_id] = np.random.default_rng(k).integers(0, 21, (20 + k, 30)).astype(np.uint8)
        write_mask(preds / f"{image_id}.png", expected[image_id])
    out = tmp_path / "submission.tar.gz"
    assert main(["--pred", str(preds), "--data", str(data), "--out", str(out)]) == 0
    with tarfile.open(out) as tf:
        names = sorted(n for n in tf.getnames() if n.endswith(".png"))
        assert names == [f"results/VOC2012/Segmentation/comp6_test_cls/{i}.png" for i in IDS]
        tf.extractall(tmp_path / "unpacked")
    for image_id in IDS:
        path = tmp_path / "unpacked/results/VOC2012/Segmentation/comp6_test_cls" / f"{image_id}.png"
        assert Image.open(path).mode == "P"
        np.testing.assert_array_equal(read_mask(path), expected[image_id])

    bad = expected[IDS[1]].copy()
    bad[0, 0] = 255  # void: the server takes 0..20 only
    write_mask(preds / f"{IDS[1]}.png", bad)
    assert main(["--pred", str(preds), "--data", str(data), "--out", str(tmp_path / "x.tar.gz")]) == 2
    assert f"{IDS[1]}.png" in capsys.readouterr().err and not (tmp_path / "x.tar.gz").exists()
    write_mask(preds / f"{IDS[1]}.png", expected[IDS[0]])  # the other image's size
    assert main(["--pred", str(preds), "--data", str(data), "--out", str(tmp_path / "x.tar.gz")]) == 2
    (preds / f"{IDS[1]}.png").unlink()
    assert main(["--pred", str(preds), "--data", str(data), "--out", str(tmp_path / "x.tar.gz")]) == 2
    assert "1 of 2 test prediction(s) missing" in capsys.readouterr().err
