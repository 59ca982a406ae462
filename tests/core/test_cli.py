"""The shared CLI dialect (wsss.core.cli), config inheritance, stale temp files, exit statuses."""

from __future__ import annotations

import argparse
import os
import time

from pathlib import Path

import pytest
import yaml

from logic.constraints import ConstraintConfig
from stage1_pseudolabel.pipeline.config import build_config
from wsss.core.atomic import TEMP_SUFFIX, atomic_write, remove_stale_temp_files
from wsss.core.cli import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_SKIPPED,
    UserError,
    add_config_arguments,
    finish,
    flatten_options,
    parse_cfg_options,
    run_cli,
)

REPO = Path(__file__).resolve().parents[2]


def test_cfg_options_and_set_are_one_flag():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, config_help="x")
    args = parser.parse_args(["--cfg-options", "a.b=1", "c=[x, y]", "--set", "d=null", "--set", "lr=1e-4"])
    opts = parse_cfg_options(args.cfg_options)
    assert opts == {"a": {"b": 1}, "c": ["x", "y"], "d": None, "lr": 1e-4}
    assert flatten_options(opts) == {"a.b": 1, "c": ["x", "y"], "d": None, "lr": 1e-4}
    with pytest.raises(ValueError, match="key=value"):
        parse_cfg_options(["novalue"])


def test_stage1_configs_inherit_their_base(tmp_path):
    box = build_config(config_file="configs/stage1/voc_box.yaml")
    base = build_config(config_file="configs/stage1/voc_box_scribble.yaml")
    assert box.data.weak_labels == ["boxes"] and box.prompts.mode == "box"
    assert box.loss["scribbles"] == 0.0 and box.loss["background"] == base.loss["background"]
    assert box.train == base.train and (box.train.lr, box.train.warmup_steps) == (3e-5, 50)
    demo = build_config(config_file="configs/stage1/demo_proxy.yaml")
    assert demo.model.type == "proxy" and (demo.train.epochs, demo.train.lr, demo.train.warmup_steps) == (25, 5e-4, 10)
    assert demo.model.checkpoint == "data/checkpoints/proxy_sam.pth"  # the child's train section merged into its base's
    assert demo.loss["background"] == 4.0 and demo.loss["background"] == 4.0 and demo.loss["neighbourhood"] == 1.0
    # _delete_ replaces the base's mapping; a cycle is refused naming the file
    (tmp_path / "a.yaml").write_text("_base_: b.yaml\nloss: {_delete_: true, background: 2.0}\n")
    (tmp_path / "b.yaml").write_text("loss: {scribbles: 0.0, neighbourhood: 0.5}\n")
    assert build_config(config_file=str(tmp_path / "a.yaml")).loss == {"background": 2.0}
    (tmp_path / "b.yaml").write_text("_base_: a.yaml\n")
    with pytest.raises(ValueError, match="inherits from itself"):
        build_config(config_file=str(tmp_path / "a.yaml"))


def test_stale_temp_files_of_a_killed_writer_are_removed(tmp_path):
    with atomic_write(tmp_path / "done.png") as handle:
        handle.write(b"x")
    stale = tmp_path / f".2007_000032.png.k3j4{TEMP_SUFFIX}"
    live = tmp_path / f".2007_000033.png.a8b9{TEMP_SUFFIX}"
    stale.write_bytes(b"half")
    live.write_bytes(b"being written")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    assert remove_stale_temp_files(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and (tmp_path / "done.png").read_bytes() == b"x"


def test_exit_statuses(capsys):
    assert finish([], what="job") == EXIT_OK
    assert finish(["a.jpg: corrupt"], what="job") == EXIT_SKIPPED
    assert "a.jpg: corrupt" in capsys.readouterr().err

    def refused() -> int:
        raise FileNotFoundError("data/x.yaml: not found")

    assert run_cli(refused) == EXIT_REFUSED
    err = capsys.readouterr().err
    assert err == "error: data/x.yaml: not found\n"  # one line, no traceback

    assert run_cli(lambda: EXIT_SKIPPED) == EXIT_SKIPPED  # the body's own status comes back
    assert capsys.readouterr().err == ""

    class CacheMismatch(UserError, RuntimeError):
        pass

    def mismatch() -> int:
        raise CacheMismatch("cache/x.pt: made by another checkpoint")

    assert run_cli(mismatch) == EXIT_REFUSED  # a UserError subclass is refused though RuntimeError is not
    assert capsys.readouterr().err == "error: cache/x.pt: made by another checkpoint\n"

    error = KeyError("a bug keeps its traceback")

    def bug() -> int:
        raise error

    with pytest.raises(KeyError) as exc:
        run_cli(bug)
    assert exc.value is error  # re-raised unchanged, not wrapped nor turned into an exit status
    assert exc.traceback[-1].name == "bug"  # the traceback reaches the line that failed
    assert capsys.readouterr().err == ""  # and no "error:" line stands in for it


@pytest.mark.parametrize("path", sorted(str(p) for p in (REPO / "configs" / "stage1").glob("*.yaml")))
def test_every_stage1_config_builds_with_its_constraints(path):
    from logic.constraints import ConstraintConfig

    cfg = build_config(config_file=path)
    ConstraintConfig.from_dict(dict(cfg.loss))  # unknown loss keys would be refused here
    assert cfg.constraints.weights == ConstraintConfig.from_dict(cfg.loss).weights  # parsed once, at build time


def test_proxy_voc_config_has_the_boxes_only_fix():
    cfg = build_config(config_file="configs/stage1/proxy_voc.yaml")
    weights = ConstraintConfig.from_dict(cfg.loss).weights
    assert cfg.model.type == "proxy" and weights["box_fill"] > 0 and weights["colour_affinity"] > 0
    assert ConstraintConfig.from_dict(build_config(config_file="configs/stage1/voc_box.yaml").loss).weights["box_fill"] > 0


@pytest.mark.parametrize("option, message", [
    ("superpixels.n_segment=300", r"superpixels\.n_segment; known keys of superpixels: n_segments, compactness, sigma"),
    ("train.lrr=1e-4", r"train\.lrr; known keys of train: epochs, max_steps, batch_size, lr,"),
    ("train.lr=fast", r"config key train\.lr: expected a float, got 'fast'"),
    ("superpixels.n_segments=0", r"config key superpixels\.n_segments must be >= 1"),
    ("train.heads=some", r"config key train\.heads must be one of \['single', 'all'\]"),
])
def test_a_bad_key_or_value_in_a_section_fails_at_build_time_naming_it(option, message):
    with pytest.raises(ValueError, match=message):
        build_config(cfg_options=[option])


def test_flat_keys_are_refused_with_their_section_spelling(tmp_path):
    with pytest.raises(ValueError, match=r"config key 'lr' is spelled 'train\.lr'"):
        build_config(cfg_options=["lr=1e-4"])
    with pytest.raises(ValueError, match=r"config key 'model_type' is spelled 'model\.type'"):
        build_config(overrides={"model_type": "vit_b"})
    with pytest.raises(ValueError, match=r"dataset folder is spelled 'data\.root'"):
        build_config(cfg_options=["data=data/VOCdevkit/VOC2012"])
    (tmp_path / "flat.yaml").write_text("_base_: " + str(REPO / "configs/stage1/tiny_random.yaml") + "\nepochs: 3\n")
    with pytest.raises(ValueError, match=r"flat\.yaml: config key 'epochs' is spelled 'train\.epochs'"):
        build_config(config_file=str(tmp_path / "flat.yaml"))


def test_flags_and_dotted_options_set_section_keys():
    from stage1_pseudolabel.pipeline.config import add_common_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_common_arguments(parser)
    args = parser.parse_args(["--config", "configs/stage1/tiny_random.yaml", "--data", "d", "--split", "all",
                              "--model-type", "vit_l", "--prompt-mode", "box", "--cfg-options", "train.lr=1e-4",
                              "model.kwargs={image_size: 128}"])
    cfg = config_from_args(args, {"train.epochs": 9, "embed.batch_size": None})
    assert (cfg.data.root, cfg.data.split, cfg.model.type, cfg.prompts.mode) == ("d", None, "vit_l", "box")
    assert (cfg.train.lr, cfg.train.epochs, cfg.embed.batch_size) == (1e-4, 9, 1)
    assert cfg.model.kwargs["image_size"] == 128 and cfg.model.kwargs["encoder_depth"] == 2  # merged into the base


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPO)) for p in (REPO / "configs" / "stage1").glob("*.yaml")))
def test_a_saved_config_loads_back_equal(path, tmp_path):
    cfg = build_config(config_file=path, cfg_options=["crf={bi_weight: 5}", "train.lr=2e-4"])
    cfg.save(tmp_path / "config.yaml")
    assert "train" in yaml.safe_load((tmp_path / "config.yaml").read_text())
    again = build_config(config_file=str(tmp_path / "config.yaml"))
    assert again == cfg and again.to_dict() == cfg.to_dict()
    assert again.constraints.weights == cfg.constraints.weights
