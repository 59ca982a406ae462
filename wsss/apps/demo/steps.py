"""The demo's timed steps between its inputs and stage 2: the classical baselines, stage 1 (embed,
zero-shot pseudo-masks, logic fine-tuning, fine-tuned pseudo-masks) and the evaluation of every
method's pseudo-masks and instance pseudo-labels on the same images."""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

from wsss.apps.demo.methods import MethodOutputs
from wsss.apps.demo.sources import Source
from wsss.apps.demo.timer import Timer

BASELINES = (("box", "box fill"), ("grabcut", "GrabCut"))  # (method of stage1_pseudolabel.baselines, row name)


def run_baselines(*, source: Source, weak_labels: Sequence[str], work: Path,
                  outputs: MethodOutputs, timer: Timer, progress: bool) -> None:
    """Box fill and GrabCut (both start from boxes): pseudo-masks and instances under ``work/baselines``."""
    from stage1_pseudolabel.baselines.cli import run_baseline
    from stage1_pseudolabel.baselines.instances import run_instance_baseline

    for method, name in BASELINES:
        with timer.step(f"baseline: {name}"):
            out = work / "baselines" / method
            run = run_baseline(method, source.data, out, split=source.split, progress=progress,
                               weak_labels=weak_labels, dataset=source.description)
            print(f"{name}: {run.summary()}")
            instances = work / "baselines" / f"{method}_instances.json"
            outputs.add(name, masks=out, instances=instances)
            run_instance_baseline(method, source.data, instances, split=source.split, weak_labels=weak_labels,
                                  dataset=source.description)


def final_method(cfg) -> str:
    """The stage 1 method stage 2 trains on and the overlays rank by: the CRF-refined masks if the config has a CRF."""
    return "fine-tuned + CRF" if cfg.crf is not None else "fine-tuned"


def crf_note(cfg) -> str:
    return (f"'+ CRF' rows: the same class probabilities refined by a dense CRF on the image (stage 1 config "
            f"crf: {cfg.get('crf')}; the demo's parameters were chosen on synthetic source scenes by make tune-crf, "
            "never on these images). Rows without it show the mask decoder alone.")


def run_stage1(cfg, *, outputs: MethodOutputs, timer: Timer, notes: List[str], progress: bool) -> None:
    """Stage 1's pipeline in four timed steps, each reusing what the work dir holds.

    With a dense CRF in the config (demo_proxy.yaml has one), the pipeline's pseudo-masks are the
    refined ones; the demo also writes the unrefined ones, so the table separates what the logic
    fine-tuning does from what the CRF does."""
    from stage1_pseudolabel.pipeline.embed import run_embed

    with timer.step("stage 1: embed"):
        s = run_embed(cfg, progress=progress)
        print(f"embedded {s['embedded']} image(s), {s['already_cached']} cached")
    if cfg.crf is not None:
        notes.append(crf_note(cfg))
    with timer.step("stage 1: zero-shot pseudo-masks"):
        zero_shot_masks(cfg, outputs=outputs, progress=progress)
    with timer.step("stage 1: logic fine-tuning of the mask decoder"):
        fine_tune(cfg, progress=progress)
    with timer.step("stage 1: fine-tuned pseudo-masks"):
        fine_tuned_masks(cfg, outputs=outputs, progress=progress)


def unrefined_dir(cfg) -> Path:
    """Where the fine-tuned decoder's masks without the CRF go when the config has one."""
    return cfg.work_path / "pseudo_masks_no_crf"


def zero_shot_masks(cfg, *, outputs: MethodOutputs, progress: bool) -> None:
    from stage1_pseudolabel.pipeline.generate import run_generate

    outputs.add_generated("zero-shot", run_generate(dataclasses.replace(cfg, crf=None), zero_shot=True,
                                                    progress=progress))
    if cfg.crf is not None:
        refined = cfg.updated(generate={"output_dir": str(cfg.output_path(zero_shot=True)) + "_crf"})
        outputs.add_generated("zero-shot + CRF", run_generate(refined, zero_shot=True, progress=progress))


def fine_tune(cfg, *, progress: bool) -> None:
    """Train the mask decoder unless its weights and training log exist; masks of an older decoder go."""
    from stage1_pseudolabel.pipeline.train import run_train

    if cfg.decoder_path().is_file() and cfg.train_log.is_file():
        print(f"fine-tuned decoder {cfg.decoder_path()} exists: skipped (--fresh retrains)")
        return
    for stale in (cfg.output_path(zero_shot=False), unrefined_dir(cfg)):
        if stale.exists():
            shutil.rmtree(stale)
    s = run_train(cfg, progress=progress)
    print(f"{s['steps']} step(s) on {s['images']} image(s); loss {s['losses'][0]:.4f} -> {s['losses'][-1]:.4f}")


def fine_tuned_masks(cfg, *, outputs: MethodOutputs, progress: bool) -> None:
    from stage1_pseudolabel.pipeline.generate import run_generate

    if cfg.crf is not None:
        raw = dataclasses.replace(cfg, crf=None).updated(generate={"output_dir": str(unrefined_dir(cfg))})
        outputs.add_generated("fine-tuned", run_generate(raw, progress=progress))
    s = run_generate(cfg.updated(generate={"diagnostics": True}), zero_shot=False, progress=progress)
    outputs.add_generated(final_method(cfg), s)


@dataclass(frozen=True, kw_only=True)
class Scores:
    """Every method's pseudo-mask metrics and instance mask AP row, and the ground-truth instances' info."""

    pseudo: Dict[str, object]
    instances: Dict[str, dict]
    truth_info: dict


def evaluate(*, source: Source, outputs: MethodOutputs, timer: Timer) -> Scores:
    """Score every method on the source's images (the only use of their ground truth), printing both tables."""
    from wsss.core.evaluation.instances import evaluate_instances, format_table
    from wsss.core.instances import read_document

    with timer.step("pseudo-mask evaluation"):
        pseudo = {name: source.score(d) for name, d in outputs.masks.items()}
        width = max(len(n) for n in pseudo)
        print(f"pseudo-mask mIoU on {len(source.ids)} {source.split} images (ground truth used for evaluation only):")
        for name, m in pseudo.items():
            print(f"  {name:<{width}}  {m.miou:6.2f}")
    with timer.step("instance pseudo-label evaluation"):
        truth = source.instance_truth()
        instances = {name: evaluate_instances(read_document(f), truth) for name, f in outputs.instances.items()}
        print(f"instance pseudo-labels, mask AP on the same images ({truth['info']['note']}):")
        print(format_table(instances))
    return Scores(pseudo=pseudo, instances=instances, truth_info=truth["info"])
