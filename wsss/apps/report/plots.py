"""Plots of the report (matplotlib, Agg backend): fine-tuning curves and a mIoU bar chart.

The training log is the JSON-lines file written by stage 1's ``train`` step: one JSON object per
logged step. :func:`read_train_log` accepts both a flat and a nested layout, so that the report does
not break when a key is added:

* the step: ``"step"`` (or ``"global_step"`` / ``"iter"``);
* the total loss: ``"loss"``;
* per-constraint truth values in [0, 1]: a dict under ``"truth"`` (or ``"truths"``), or flat keys
  ``"truth/<name>"`` / ``"truth_<name>"``; per-constraint mean log-truths under ``"log_truth"`` (stage
  1's ``train_log.jsonl`` writes ``{"step", "epoch", "loss", "lr", "images", "log_truth": {...},
  "truth": {...}}``);
* per-constraint losses: a dict under ``"losses"`` / ``"constraint_loss"``, or flat keys
  ``"loss/<name>"`` / ``"loss_<name>"``. When none are logged, each constraint's loss term is taken
  as minus its mean log-truth (the unweighted term of the loss with mean normalisation).

Lines that are not JSON objects, or that have no step, are skipped (a log being written while it is
read may end in a partial line).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

_STEP_KEYS = ("step", "global_step", "iter", "iteration")
_TRUTH_DICTS = ("truth", "truths", "constraint_truth", "mean_truth")
_LOSS_DICTS = ("losses", "constraint_loss", "constraint_losses", "loss_terms")


def _num(v) -> Optional[float]:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def read_train_log(path: Path) -> List[dict]:
    """Normalised records ``{"step", "loss", "truth": {name: v}, "losses": {name: v}}`` of a JSON-lines log."""
    records = []
    path = Path(path)
    if not path.is_file():
        return records
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        step = next((_num(obj[k]) for k in _STEP_KEYS if k in obj), None)
        if step is None:
            continue
        rec = {"step": step, "loss": _num(obj.get("loss")), "truth": {}, "losses": {}, "log_truth": {}}
        if "epoch" in obj:
            rec["epoch"] = _num(obj["epoch"])
        for key in ("fg_in_boxes", "fg_in_boxes_zero_shot"):  # the boxes-only collapse shows here
            if _num(obj.get(key)) is not None:
                rec[key] = _num(obj[key])
        for key, val in obj.items():
            if key == "log_truth" and isinstance(val, dict):
                rec["log_truth"].update({k: f for k, v in val.items() if (f := _num(v)) is not None})
            elif key in _TRUTH_DICTS and isinstance(val, dict):
                rec["truth"].update({k: f for k, v in val.items() if (f := _num(v)) is not None})
            elif key in _LOSS_DICTS and isinstance(val, dict):
                rec["losses"].update({k: f for k, v in val.items() if (f := _num(v)) is not None})
            else:
                for prefix, target in (("truth/", "truth"), ("truth_", "truth"), ("loss/", "losses"), ("loss_", "losses")):
                    if key.startswith(prefix) and (f := _num(val)) is not None:
                        rec[target][key[len(prefix):]] = f
                        break
        if not rec["truth"] and rec["log_truth"]:
            rec["truth"] = {k: math.exp(v) for k, v in rec["log_truth"].items()}
        if not rec["losses"] and rec["log_truth"]:
            rec["losses"] = {k: -v for k, v in rec["log_truth"].items()}
        records.append(rec)
    return records


def _agg():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: Series of at least this many logged steps are drawn raw (faint) with a moving mean over them.
SMOOTH_MIN_POINTS = 40


def moving_mean(values: Sequence[float], window: int) -> List[float]:
    """Centred moving mean over ``window`` points (fewer at the two ends), e.g. ``[1, 2, 3, 4, 5]``
    with window 3 -> ``[1.5, 2, 3, 4, 4.5]``: the trend under the per-step noise of one image a step."""
    n = len(values)
    sums = [0.0]
    for v in values:
        sums.append(sums[-1] + float(v))
    half = window // 2
    out = []
    for i in range(n):
        lo, hi = max(0, i - half), min(n, i - half + window)
        out.append((sums[hi] - sums[lo]) / (hi - lo))
    return out


def _series(ax, xs: Sequence[float], ys: Sequence[float], *, label: str, style: str = "-", **kw) -> None:
    """One curve: as logged when short, else faint as logged under its moving mean (one colour)."""
    if len(ys) < SMOOTH_MIN_POINTS:
        ax.plot(xs, ys, style, label=label, **kw)
        return
    window = max(3, len(ys) // 20)
    raw = ax.plot(xs, ys, style, alpha=0.25, lw=0.7, **{k: v for k, v in kw.items() if k != "lw"})[0]
    kw["color"] = raw.get_color()
    ax.plot(xs, moving_mean(ys, window), style, label=f"{label} (mean of {window} steps)", **kw)


def plot_training_curves(records: Sequence[dict], out_png: Path, *, title: str = "logic fine-tuning") -> Optional[Path]:
    """Panels over the training steps: losses (total and per constraint), per-constraint truth, and,
    where logged, the foreground fraction inside the boxes next to the zero-shot model's (a decoder
    that paints its boxes as background, the boxes-only collapse, shows as a falling curve).

    Truth values are plotted as logged; a log of log-truths (<= 0) is labelled as such. Returns
    ``None`` (and writes nothing) when there is nothing to plot.
    """
    records = [r for r in records if r.get("loss") is not None or r.get("truth") or r.get("losses")]
    if not records:
        return None
    plt = _agg()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    steps = [r["step"] for r in records]
    with_fg = any("fg_in_boxes" in r for r in records)
    fig, axes = plt.subplots(1, 3 if with_fg else 2, figsize=(16 if with_fg else 11, 4))
    ax_l, ax_t = axes[0], axes[1]
    if with_fg:
        ax_f = axes[2]
        for key, style, label in (("fg_in_boxes", "-", "fine-tuned decoder"),
                                  ("fg_in_boxes_zero_shot", "--", "zero-shot decoder")):
            pts = [(r["step"], r[key]) for r in records if key in r]
            if pts:
                _series(ax_f, *zip(*pts), style=style, lw=1.5, label=label)
        ax_f.set_ylim(0, 1), ax_f.set_xlabel("step"), ax_f.set_ylabel("fraction of box cells labelled foreground")
        ax_f.set_title(f"{title}: foreground inside the boxes")
        ax_f.legend(fontsize=7)
    if any(r.get("loss") is not None for r in records):
        _series(ax_l, [r["step"] for r in records if r.get("loss") is not None],
                [r["loss"] for r in records if r.get("loss") is not None], color="k", lw=2, label="total")
    names = sorted({k for r in records for k in r.get("losses", {})})
    for n in names:
        pts = [(r["step"], r["losses"][n]) for r in records if n in r.get("losses", {})]
        _series(ax_l, *zip(*pts), lw=1.2, label=n)
    ax_l.set_xlabel("step"), ax_l.set_ylabel("loss (per constraint: - mean log-truth)")
    ax_l.set_title(f"{title}: loss")
    if names or any(r.get("loss") for r in records):
        positive = [v for r in records for v in ([r["loss"]] if r.get("loss") else []) + list(r.get("losses", {}).values())]
        if positive and min(positive) > 0 and max(positive) / max(min(positive), 1e-12) > 50:
            ax_l.set_yscale("log")
        ax_l.legend(fontsize=7)
    tnames = sorted({k for r in records for k in r.get("truth", {})})
    all_t = [v for r in records for v in r.get("truth", {}).values()]
    for n in tnames:
        pts = [(r["step"], r["truth"][n]) for r in records if n in r.get("truth", {})]
        _series(ax_t, *zip(*pts), lw=1.2, label=n)
    is_log = bool(all_t) and max(all_t) <= 0 and min(all_t) < -1e-9 and min(all_t) < 0
    ax_t.set_xlabel("step")
    ax_t.set_ylabel("mean log-truth" if is_log and min(all_t) < -1.0 else "truth")
    ax_t.set_title(f"{title}: truth per constraint")
    if tnames:
        ax_t.legend(fontsize=7)
    else:
        ax_t.text(0.5, 0.5, "no per-constraint truth logged", ha="center", va="center", transform=ax_t.transAxes)
    if len(set(steps)) == 1:
        for ax in axes:
            for line in ax.get_lines():
                line.set_marker("o")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png


def plot_miou_bars(values: Dict[str, float], out_png: Path, *, title: str = "pseudo-mask mIoU") -> Optional[Path]:
    """A horizontal bar chart of ``name -> mIoU`` (0..100)."""
    values = {k: v for k, v in values.items() if v is not None and v == v}
    if not values:
        return None
    plt = _agg()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    names = list(values)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.0))
    bars = ax.barh(names[::-1], [values[n] for n in names[::-1]], color="#4c72b0")
    for b, v in zip(bars, [values[n] for n in names[::-1]]):
        ax.text(b.get_width() + 0.5, b.get_y() + b.get_height() / 2, f"{v:.1f}", va="center", fontsize=8)
    ax.set_xlim(0, 105)
    ax.set_xlabel("mIoU (%)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png
