"""Stage 1 end to end with a small random-weight SAM: embed, train, generate, evaluate.

The model is a SAM-architecture network with a 256 px encoder input, a 2-block ViT and a 64-channel
decoder (configs/stage1/tiny_random.yaml): the code path is the one official checkpoints take, only
the sizes are small, so a training step costs a fraction of a second on one CPU core.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wsss.core.evaluation import evaluate_folders
from wsss.core.masks import read_mask
from stage1_pseudolabel.pipeline import train as train_module
from stage1_pseudolabel.pipeline.cache import CacheMismatchError, EmbeddingCache
from stage1_pseudolabel.pipeline.embed import main as embed_main
from stage1_pseudolabel.pipeline.embed import run_embed
from stage1_pseudolabel.pipeline.generate import main as generate_main
from stage1_pseudolabel.pipeline.generate import run_generate
from stage1_pseudolabel.pipeline.model import load_model
from stage1_pseudolabel.pipeline.predict import DecoderRunner, lowres_log_distribution
from stage1_pseudolabel.pipeline.prepare import ImageInputs, compile_constraints, open_dataset, prepare_image
from stage1_pseudolabel.pipeline.train import run_train
from wsss.core.cli import EXIT_SKIPPED
from stage1_pseudolabel.pipeline.train import main as train_main
from stage1_pseudolabel.sam.checkpoint import CheckpointError
from wsss.core.synthetic import write_dataset
from conftest import TINY_CONFIG, tiny_config as make_cfg

REPO = Path(__file__).resolve().parents[2]
NUM_TRAIN = 6



@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "data"
    write_dataset(root, domain="target", num_train=NUM_TRAIN, num_val=1, seed=0, size_range=(120, 160))
    return root


@pytest.fixture(scope="module")
def trained(synthetic, tmp_path_factory):
    """One uninterrupted run: embed, then 2 epochs x 3 steps of 2 images."""
    work = tmp_path_factory.mktemp("run_a")
    cfg = make_cfg(synthetic, work)
    embed = run_embed(cfg, progress=False)
    initial = load_model(cfg.model, device=torch.device("cpu"))[0].state_dict()
    captured = {}
    real_load_model = train_module.load_model

    def spy(*args, **kwargs):
        captured["model"], key = real_load_model(*args, **kwargs)
        return captured["model"], key

    train_module.load_model = spy
    try:
        summary = run_train(cfg, progress=False)
    finally:
        train_module.load_model = real_load_model
    masks = run_generate(cfg, progress=False)
    return {"cfg": cfg, "embed": embed, "train": summary, "generate": masks, "initial": initial,
            "model": captured["model"]}


def total_loss(cfg, decoder_state=None) -> float:
    """The logic loss summed over all training images, for a given decoder."""
    model, key = load_model(cfg.model, device=torch.device("cpu"))
    if decoder_state is not None:
        model.mask_decoder.load_state_dict(decoder_state)
    cache = EmbeddingCache(cfg.cache_dir, key=key)
    runner = DecoderRunner(model, device=torch.device("cpu"))
    dataset = open_dataset(cfg)
    inputs = ImageInputs.from_config(cfg)
    total = 0.0
    with torch.no_grad():
        for image_id in dataset.ids:
            ann = dataset.load(image_id)
            prepared = prepare_image(ann, inputs=inputs, encoder_size=key.encoder_size, lowres=key.lowres_size)
            constraints = compile_constraints(ann, prepared, inputs=inputs)
            log_probs = lowres_log_distribution(prepared, runner.object_logits(prepared, cache.load(image_id)))
            loss, truths = constraints.loss_and_truths(log_probs)
            assert set(truths) >= {"background", "box_tightness", "scribbles", "neighbourhood", "border_precision"}
            total += float(loss)
    return total


def decoder_of(path: Path):
    return torch.load(path, map_location="cpu", weights_only=True)["mask_decoder"]


def png_bytes(folder: Path):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def test_end_to_end_synthetic(trained, synthetic):
    cfg = trained["cfg"]
    assert trained["embed"]["embedded"] == NUM_TRAIN and not trained["embed"]["problems"]
    summary = trained["train"]
    assert summary["steps"] == 6

    # The loss goes down: same images, same prompts, initial vs fine-tuned decoder.
    final = decoder_of(cfg.decoder_path())
    before, after = total_loss(cfg), total_loss(cfg, final)
    assert after < before

    # Only mask-decoder parameters changed; the encoders are frozen and in eval mode.
    model, initial = trained["model"], trained["initial"]
    assert model.image_encoder is None  # train never runs (or holds) the image encoder
    for name, p in model.named_parameters():
        assert not p.requires_grad or name.startswith("mask_decoder."), name
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "mask_decoder.transformer.layers.0.self_attn.q_proj.weight" in trainable
    for name, value in model.state_dict().items():
        if not name.startswith("mask_decoder."):
            assert torch.equal(value, initial[name]), name
    assert not model.prompt_encoder.training
    changed = [k for k, v in final.items() if not torch.equal(v, initial["mask_decoder." + k])]
    assert any(k.startswith("transformer.") for k in changed)
    assert set(final) == {k[len("mask_decoder."):] for k in initial if k.startswith("mask_decoder.")}

    # Per-constraint truths are logged each step.
    lines = [json.loads(s) for s in cfg.train_log.read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(1, 7))
    assert all(0 < t <= 1 for r in lines for t in r["truth"].values())
    assert set(lines[0]["truth"]) == {"background", "box_tightness", "scribbles", "neighbourhood", "border_precision"}

    # Generate (fine-tuned) and zero-shot through the same code path, then evaluate both.
    assert trained["generate"]["written"] == NUM_TRAIN
    zero = run_generate(cfg, zero_shot=True, progress=False)
    assert zero["written"] == NUM_TRAIN and zero["output_dir"].endswith("zeroshot_both")
    for out in (cfg.output_path(zero_shot=False), cfg.output_path(zero_shot=True)):
        metrics = evaluate_folders(pred_dir=out, gt_dir=synthetic / "SegmentationClass",
                                   ids=open_dataset(cfg).ids)
        assert metrics.num_images == NUM_TRAIN and 0 <= metrics.miou <= 100
    mask = read_mask(cfg.output_path(zero_shot=False) / f"{open_dataset(cfg).ids[0]}.png")
    gt = read_mask(synthetic / "SegmentationClass" / f"{open_dataset(cfg).ids[0]}.png")
    assert mask.shape == gt.shape
    with Image.open(cfg.output_path(zero_shot=False) / f"{open_dataset(cfg).ids[0]}.png") as img:
        assert img.mode == "P"


def test_resume_after_interruption_gives_the_same_outputs(trained, synthetic, tmp_path, monkeypatch):
    a = trained["cfg"]
    work = tmp_path / "run_b"
    shutil.copytree(a.cache_dir, work / "embeddings")
    cfg = make_cfg(synthetic, work)
    calls = {"n": 0}
    real_getitem = train_module.TrainImages.__getitem__

    def dies_during_step_6(self, index):
        calls["n"] += 1
        if calls["n"] == 11:  # first image of step 6; last checkpoint was step 4 (mid-epoch 1)
            raise KeyboardInterrupt("simulated kill")
        return real_getitem(self, index)

    monkeypatch.setattr(train_module.TrainImages, "__getitem__", dies_during_step_6)
    with pytest.raises(KeyboardInterrupt):
        run_train(cfg, progress=False)
    state = torch.load(cfg.decoder_dir / "last.pth", weights_only=True)
    assert {k: state["progress"][k] for k in ("step", "epoch", "batch_in_epoch")} == {"step": 4, "epoch": 1,
                                                                                       "batch_in_epoch": 1}
    monkeypatch.setattr(train_module.TrainImages, "__getitem__", real_getitem)
    with pytest.raises(ValueError, match="cannot --resume"):  # another batch size: another image order
        run_train(make_cfg(synthetic, work, train=dict(batch_size=3)), resume=True, progress=False)
    resumed = run_train(cfg, resume=True, progress=False)
    assert resumed["steps"] == 6
    ref, got = decoder_of(a.decoder_path()), decoder_of(cfg.decoder_path())
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert [json.loads(s)["step"] for s in cfg.train_log.read_text().splitlines()] == list(range(1, 7))
    run_generate(cfg, progress=False)
    assert png_bytes(cfg.output_path(zero_shot=False)) == png_bytes(a.output_path(zero_shot=False))


def test_images_prepared_in_worker_processes_train_as_in_process(trained, synthetic, tmp_path, monkeypatch):
    """Preparation (objects, prompts, superpixels, constraints) runs before the first step, in worker
    processes or in this one, and the trained decoder is the same; a step builds nothing (no
    constraints, no prompt tensors from host arrays), and with the embeddings preloaded reads no file."""
    from stage1_pseudolabel.pipeline import train_images
    from stage1_pseudolabel.sam.prompts import ObjectPrompts

    a = trained["cfg"]
    decoders = {}
    built, prompt_copies = [], []
    real_compile, real_step = train_images.compile_constraints, train_module._step_losses
    monkeypatch.setattr(train_images, "compile_constraints", lambda *x, **k: (built.append(1), real_compile(*x, **k))[1])
    real_tensors = ObjectPrompts.to_tensors
    monkeypatch.setattr(ObjectPrompts, "to_tensors",
                        lambda self, *x, **k: (prompt_copies.append(1), real_tensors(self, *x, **k))[1])

    def step_builds_nothing(*args, **kwargs):
        before = len(built), len(prompt_copies)
        out = real_step(*args, **kwargs)
        assert (len(built), len(prompt_copies)) == before
        return out

    monkeypatch.setattr(train_module, "_step_losses", step_builds_nothing)
    for workers in (0, 2):  # and with the embeddings preloaded on the device: no file read per step
        work = tmp_path / f"workers{workers}"
        shutil.copytree(a.cache_dir, work / "embeddings")
        cfg = make_cfg(synthetic, work, train=dict(prepare_workers=workers, preload_embeddings="device" if workers else "none"))
        built.clear()
        loads = []
        real_load = EmbeddingCache.load
        monkeypatch.setattr(EmbeddingCache, "load", lambda self, *x, **k: (loads.append(1), real_load(self, *x, **k))[1])
        summary = run_train(cfg, progress=False)
        monkeypatch.setattr(EmbeddingCache, "load", real_load)
        # each image read once for the zero-shot pass, once to preload it; without preloading, also per step
        assert len(loads) == (2 * NUM_TRAIN if workers else NUM_TRAIN + 6 * 2)
        assert summary["steps"] == 6 and summary["prepare_seconds"] > 0
        assert len(built) == (NUM_TRAIN if workers == 0 else 0)  # in workers: their own copy of the module
        assert len(prompt_copies) >= NUM_TRAIN  # made at preparation, once per prompt group
        decoders[workers] = decoder_of(cfg.decoder_path())
    ref = decoder_of(a.decoder_path())
    for workers, got in decoders.items():
        assert all(torch.equal(ref[k], got[k]) for k in ref), workers


def test_ddp_ranks_segment_their_share_and_every_rank_reads_it(trained, synthetic, tmp_path, monkeypatch):
    """Under DDP every rank prepares every image; SLIC (most of that cost) runs once per image over all
    ranks: each segments its share (prepare_superpixels), and the full preparation reads them from disk."""
    from stage1_pseudolabel.pipeline import prepare as prepare_module
    from stage1_pseudolabel.pipeline.train_images import prepare_images, prepare_superpixels

    cfg = make_cfg(synthetic, tmp_path / "ranks")
    key = load_model(cfg.model, device=torch.device("cpu"))[1]
    geometry = dict(encoder_size=key.encoder_size, lowres=key.lowres_size, padded=key.padded, workers=0)
    ids = open_dataset(cfg).ids
    calls = []
    real = prepare_module.compute_superpixels
    monkeypatch.setattr(prepare_module, "compute_superpixels", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    for rank in range(2):
        assert prepare_superpixels(cfg, ids[rank::2], **geometry) == len(ids[rank::2])
    assert len(calls) == len(ids)
    prepared = prepare_images(cfg, ids, **geometry)
    assert len(calls) == len(ids) and sorted(prepared) == sorted(ids)
    no_superpixels = make_cfg(synthetic, tmp_path / "none", **{"loss.border_precision": 0.0})
    assert prepare_superpixels(no_superpixels, ids, **geometry) == 0


def test_two_shards_make_exactly_one_runs_masks(trained, synthetic, tmp_path):
    a = trained["cfg"]
    out = tmp_path / "sharded"
    cfg = make_cfg(synthetic, a.work_dir, generate=dict(output_dir=str(out)))
    s0 = run_generate(cfg, shard_index=0, num_shards=2, progress=False)
    s1 = run_generate(cfg, shard_index=1, num_shards=2, progress=False)
    assert s0["written"] + s1["written"] == NUM_TRAIN
    assert png_bytes(out) == png_bytes(a.output_path(zero_shot=False))
    again = run_generate(cfg, shard_index=1, num_shards=2, progress=False)  # resubmitted job
    assert again["written"] == 0 and again["existing"] == s1["written"]


def test_a_mask_folder_made_by_another_run_is_refused(trained, synthetic, tmp_path):
    """generate resumes its own run only: a folder whose masks another decoder (here the zero-shot one)
    or other mask settings made is refused, naming what differs, instead of keeping stale masks."""
    from stage1_pseudolabel.pipeline.generate import RECORD_FILE, OutputMismatchError

    a = trained["cfg"]
    out = tmp_path / "masks"
    cfg = make_cfg(synthetic, a.work_dir, generate=dict(output_dir=str(out)))
    assert run_generate(cfg, progress=False)["written"] == NUM_TRAIN
    assert json.loads((out / RECORD_FILE).read_text())["decoder"].startswith("file:")
    with pytest.raises(OutputMismatchError, match=r"masks.*differs in: decoder;.*another --output-dir"):
        run_generate(cfg, zero_shot=True, progress=False)
    other = make_cfg(synthetic, a.work_dir, generate=dict(output_dir=str(out)), prompts=dict(mode="box"))
    with pytest.raises(OutputMismatchError, match=r"differs in: config\.prompts\.mode"):
        run_generate(other, progress=False)
    again = run_generate(cfg, progress=False)  # the same run: resumed
    assert again["written"] == 0 and again["existing"] == NUM_TRAIN


def test_dense_crf_refinement_in_generate(trained, synthetic, tmp_path, monkeypatch):
    from wsss.core import crf as crf_module

    if not crf_module.crf_available():
        pytest.skip("pydensecrf2 not installed")
    a = trained["cfg"]
    out = tmp_path / "crf"
    cfg = make_cfg(synthetic, a.work_dir, crf={"bi_rgb_std": 10}, generate=dict(output_dir=str(out)))
    monkeypatch.setattr(crf_module, "crf_available", lambda: False)  # as without pydensecrf2
    with pytest.raises(ImportError, match="pydensecrf2"):
        run_generate(cfg, progress=False)
    assert not out.exists() or not list(out.iterdir())  # refused before any work
    monkeypatch.undo()
    s = run_generate(cfg, progress=False)
    assert s["written"] == NUM_TRAIN
    plain = a.output_path(zero_shot=False)
    dataset = open_dataset(a)
    changed = 0
    for image_id in dataset.ids:
        refined, before = read_mask(out / f"{image_id}.png"), read_mask(plain / f"{image_id}.png")
        assert refined.shape == before.shape
        allowed = {0} | {int(c) for c in dataset.load(image_id).box_classes}
        assert set(np.unique(refined).tolist()) <= allowed  # the CRF only sees the image's own classes
        changed += int((refined != before).sum())
    assert changed > 0

    # The CRF in 2 worker processes writes the same masks and instance file as in generate's own
    # (crf_workers 0); the instances come back in image order.
    files = {}
    for workers in (0, 2):
        pooled = tmp_path / f"crf{workers}"
        c = make_cfg(synthetic, a.work_dir, crf={"bi_rgb_std": 10}, generate=dict(output_dir=str(pooled), crf_workers=workers, instances=True))
        assert run_generate(c, progress=False)["written"] == NUM_TRAIN
        doc = json.loads(Path(c.instances_path(zero_shot=False)).read_text())
        files[workers] = (png_bytes(pooled), doc["images"], doc["annotations"])
        assert files[workers][0] == png_bytes(out)
    assert files[0] == files[2]


def test_unreadable_images_are_reported_by_name_and_the_rest_goes_on(trained, synthetic, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(synthetic, data)
    ids = open_dataset(trained["cfg"]).ids
    corrupt, missing = ids[1], ids[2]
    (data / "JPEGImages" / f"{corrupt}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (data / "JPEGImages" / f"{missing}.jpg").unlink()
    work = tmp_path / "work"
    shutil.copytree(trained["cfg"].decoder_dir, work / "decoder")
    cfg = make_cfg(data, work)
    s = run_embed(cfg, progress=False)
    bad = {p["image_id"]: p["error"] for p in s["problems"]}
    assert set(bad) == {corrupt, missing} and s["embedded"] == NUM_TRAIN - 2
    assert f"{corrupt}.jpg" in bad[corrupt] and f"{missing}.jpg" in bad[missing]
    assert not any(p.name.startswith((corrupt, missing)) for p in cfg.cache_dir.iterdir())
    # generate tries to embed the two again (embed_missing) and reports them the same way
    g = run_generate(make_cfg(data, work, generate=dict(output_dir=str(tmp_path / "plain"))), progress=False)
    assert {p["image_id"] for p in g["problems"]} == {corrupt, missing} and g["written"] == NUM_TRAIN - 2
    assert sorted(p.stem for p in (tmp_path / "plain").glob("*.png")) == sorted(set(ids) - {corrupt, missing})
    # the CLIs finish the rest but exit 3 (not 0: a SLURM array task must not look green), naming the
    # skipped images on stderr and in the problems file
    cli = ["--config", str(TINY_CONFIG), "--data", str(data), "--work-dir", str(work), "--no-progress"]
    assert embed_main(cli) == EXIT_SKIPPED
    assert generate_main(cli + ["--out-dir", str(tmp_path / "plain")]) == EXIT_SKIPPED
    err = capsys.readouterr().err
    assert f"{corrupt}.jpg" in err and f"{missing}.jpg" in err and "problems listed in" in err
    problems_file = json.loads((work / "logs" / "generate_finetuned_shard0of1.json").read_text())
    assert {p["image_id"] for p in problems_file["problems"]} == {corrupt, missing}
    # with the CRF, the image itself is read even where the embedding is cached
    from wsss.core.crf import crf_available

    if crf_available():
        later = ids[3]
        (data / "JPEGImages" / f"{later}.jpg").write_bytes(b"")
        g = run_generate(make_cfg(data, work, crf={}, generate=dict(output_dir=str(tmp_path / "crf"))), progress=False)
        bad = {p["image_id"]: p["error"] for p in g["problems"]}
        assert set(bad) == {corrupt, missing, later} and f"{later}.jpg" in bad[later]
        assert g["written"] == NUM_TRAIN - 3 and not (tmp_path / "crf" / f"{later}.png").exists()


def test_images_without_labels_and_disk_full(trained, synthetic, tmp_path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(synthetic, data)
    ids = open_dataset(trained["cfg"]).ids
    bare = ids[0]
    (data / "Annotations" / f"{bare}.xml").write_text("<annotation><filename>x.jpg</filename></annotation>")
    (data / "scribbles" / f"{bare}.png").unlink()
    (data / "points" / f"{bare}.json").unlink()
    work = tmp_path / "work"
    shutil.copytree(trained["cfg"].cache_dir, work / "embeddings")
    shutil.copytree(trained["cfg"].decoder_dir, work / "decoder")
    cfg = make_cfg(data, work)
    s = run_generate(cfg, progress=False)
    assert s["no_labels_background"] == 1 and s["written"] == NUM_TRAIN - 1
    assert (read_mask(cfg.output_path(zero_shot=False) / f"{bare}.png") == 0).all()

    skip = make_cfg(data, work, data=dict(no_label_policy="skip"), generate=dict(output_dir=str(tmp_path / "skip")))
    s = run_generate(skip, progress=False)
    assert s["no_labels_skipped"] == 1 and not (tmp_path / "skip" / f"{bare}.png").exists()

    # The disk fills up at the third mask: the run stops with the error, no partial PNG remains.
    full = make_cfg(data, work, generate=dict(output_dir=str(tmp_path / "full")))
    real_save = Image.Image.save
    count = {"n": 0}

    def save_until_full(self, fp, *args, **kwargs):
        count["n"] += 1
        if count["n"] == 3:
            fp.write(b"\x89PNG partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save_until_full)
    with pytest.raises(OSError, match="No space left"):
        run_generate(full, progress=False)
    monkeypatch.setattr(Image.Image, "save", real_save)
    from stage1_pseudolabel.pipeline.generate import RECORD_FILE

    written = sorted(p for p in (tmp_path / "full").iterdir() if p.name != RECORD_FILE)  # the run's record stays
    assert len(written) == 2 and all(p.suffix == ".png" for p in written)
    for p in written:
        read_mask(p)  # complete, readable
    s = run_generate(full, progress=False)  # resubmitted: finishes the rest
    assert s["existing"] == 2 and s["written"] + s["no_labels_background"] == NUM_TRAIN - 2


def test_bad_cache_and_checkpoint_are_refused(trained, synthetic, tmp_path):
    a = trained["cfg"]
    other_weights = make_cfg(synthetic, a.work_dir, model=dict(seed=1))
    with pytest.raises(CacheMismatchError, match="encoder_fingerprint"):
        run_embed(other_weights, progress=False)
    other_size = make_cfg(synthetic, a.work_dir, model=dict(kwargs={**a.model.kwargs, "image_size": 128}))
    with pytest.raises(CacheMismatchError, match="encoder_size"):
        run_generate(other_size, progress=False)
    missing = make_cfg(synthetic, tmp_path / "w", model=dict(checkpoint=str(tmp_path / "sam_vit_b_01ec64.pth")))
    with pytest.raises(CheckpointError, match="does not exist"):
        run_embed(missing, progress=False)
    no_decoder = make_cfg(synthetic, tmp_path / "w2")
    with pytest.raises(CheckpointError, match="run the train step"):
        run_generate(no_decoder, progress=False)


@pytest.mark.realdata
def test_real_voc_images_through_the_clis(voc_root, tmp_path, capsys):
    work = tmp_path / "voc"
    common = ["--config", str(TINY_CONFIG), "--data", str(voc_root), "--split", "train", "--work-dir", str(work),
              "--model-type", "vit_b", "--checkpoint", "none", "--set", "data.max_images=3", "--no-progress"]
    assert embed_main(common + ["--shard-index", "0", "--num-shards", "1"]) == 0
    assert train_main(common + ["--max-steps", "2", "--batch-size", "2"]) == 0
    assert generate_main(common + ["--shard-index", "0", "--num-shards", "1"]) == 0
    assert generate_main(common + ["--zero-shot"]) == 0
    out = capsys.readouterr().out
    assert "embedded 3 image(s)" in out and "trained 2 step(s)" in out and "3 mask(s) written" in out
    ids = (voc_root / "ImageSets" / "Segmentation" / "train.txt").read_text().split()[:3]
    for folder in ("pseudo_masks", "zeroshot_both"):
        metrics = evaluate_folders(pred_dir=work / folder, gt_dir=voc_root / "SegmentationClass", ids=ids)
        assert metrics.num_images == 3


def test_ddp_two_processes_match_one_process(trained, synthetic, tmp_path):
    """torchrun with 2 CPU processes (gloo), 1 image each per step == 1 process with 2 images per step."""
    a = trained["cfg"]
    work = tmp_path / "ddp"
    shutil.copytree(a.cache_dir, work / "embeddings")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "stage1_pseudolabel.pipeline.train", "--config", str(TINY_CONFIG), "--data", str(synthetic),
           "--work-dir", str(work), "--batch-size", "1", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ref, got = decoder_of(a.decoder_path()), decoder_of(work / "decoder" / "final.pth")
    for k in ref:
        if k.endswith("k_proj.bias"):
            continue  # attention is invariant to key biases: their gradient is rounding noise, amplified by Adam
        assert torch.allclose(ref[k], got[k], atol=1e-4, rtol=1e-3), k
    assert total_loss(a, got) == pytest.approx(total_loss(a, ref), rel=1e-4)
    steps = [json.loads(line)["step"] for line in (work / "train_log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 7))
    assert all(json.loads(line)["images"] == 2 for line in (work / "train_log.jsonl").read_text().splitlines())
