"""The quality report: ``report.html`` (offline, PNGs referenced relatively) and ``report.json``.

:func:`build_report` takes the numbers (pseudo-mask metrics per method, stage 2 metrics), the path of
stage 1's training log and the overlay rows, writes the figures next to the page and returns the
report dict that is also saved as ``report.json``. Numbers are percentages (0..100).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from wsss.core.atomic import write_json
from wsss.apps.report.html import render_html
from wsss.apps.report.overlays import (
    OverlayRow,
    blend,
    class_legend,
    colorize,
    draw_weak_labels,
    overlay_grid,
    per_image_miou,
    read_violation_maps,
    select_best_median_worst,
    violation_grid,
)
from wsss.apps.report.plots import plot_miou_bars, plot_training_curves, read_train_log

__all__ = [
    "OverlayRow", "blend", "build_report", "class_legend", "colorize", "draw_weak_labels", "metrics_dict",
    "overlay_grid", "per_image_miou", "plot_miou_bars", "plot_training_curves", "read_train_log",
    "read_violation_maps", "render_html", "select_best_median_worst", "violation_grid",
]


def metrics_dict(metrics) -> dict:
    """A ``SegmentationMetrics`` (or an already-converted dict) as the report's compact dict."""
    d = metrics.to_dict() if hasattr(metrics, "to_dict") else dict(metrics)
    out = {
        "mIoU": d.get("mIoU", d.get("miou")),
        "pixel_accuracy": d.get("pixel_accuracy"),
        "per_class_iou": d.get("per_class_iou", {}),
        "num_images": d.get("num_images"),
    }
    for k, v in d.items():
        if k not in out and k not in ("confusion", "confusion_columns", "miou"):
            out[k] = v
    return out


def build_report(
    out_dir: Union[str, Path],
    *,
    pseudo_metrics: Dict[str, object],
    stage2_metrics: Optional[Dict[str, object]] = None,
    stage2_description: Optional[str] = None,
    train_log: Optional[Union[str, Path]] = None,
    overlay_rows: Optional[Sequence[OverlayRow]] = None,
    diagnostics_dir: Optional[Union[str, Path]] = None,
    ranked_by: Optional[str] = None,
    title: str = "Weakly-supervised segmentation: quality report",
    dataset: Optional[dict] = None,
    model: Optional[dict] = None,
    targets: Optional[List[dict]] = None,
    timings: Optional[Dict[str, float]] = None,
    notes: Optional[List[str]] = None,
    extra: Optional[dict] = None,
    classes: Optional[Sequence[str]] = None,
) -> dict:
    """Write ``out_dir/report.html``, ``out_dir/report.json`` and the figures; return the report dict.

    Args:
        pseudo_metrics: method name -> ``SegmentationMetrics`` (or its dict) of the pseudo-masks; all
            on the same images.
        stage2_metrics: name (e.g. ``"stage 2 on fine-tuned"``) -> metrics of the stage 2 network.
        train_log: stage 1's JSON-lines training log (per-constraint truth and loss curves).
        overlay_rows: rows of the example grid (best / median / worst).
        diagnostics_dir: ``generate --diagnostics`` output of the fine-tuned masks: the rows' violation
            maps are drawn beside them.
        targets: ``[{"name", "measured", "passed"}]`` shown at the top.
        classes: the dataset's class names for the legend (a dataset description's); default VOC's.
            The per-class tables take their names from the metrics themselves.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures: Dict[str, str] = {}
    methods = {k: metrics_dict(v) for k, v in pseudo_metrics.items()}
    nums = {m.get("num_images") for m in methods.values() if m.get("num_images") is not None}
    if plot_miou_bars({k: m["mIoU"] for k, m in methods.items()}, out_dir / "pseudo_miou.png"):
        figures["pseudo_bars"] = "pseudo_miou.png"
    training = {}
    if train_log is not None:
        records = read_train_log(Path(train_log))
        training = {"log": str(train_log), "num_records": len(records)}
        if records:
            last = records[-1]
            training["last"] = {"step": last["step"], "loss": last.get("loss"), "truth": last.get("truth", {}),
                                "losses": last.get("losses", {})}
            training["first"] = {"step": records[0]["step"], "loss": records[0].get("loss"),
                                 "truth": records[0].get("truth", {})}
        if plot_training_curves(records, out_dir / "training_curves.png"):
            figures["training_curves"] = "training_curves.png"
    overlays = {}
    if overlay_rows:
        overlay_grid(overlay_rows, out_dir / "overlays.png")
        figures["overlays"] = "overlays.png"
        present = set()
        for row in overlay_rows:
            present.update(int(c) for c in row.annotation.labelled_classes())
        overlays = {
            "ranked_by": ranked_by,
            "rows": [{"label": r.label, "image_id": r.image_id, "scores": r.scores} for r in overlay_rows],
            "legend": class_legend(**({"classes": classes} if classes else {}), present=[0] + sorted(present)),
        }
        if diagnostics_dir is not None:
            maps = [read_violation_maps(Path(diagnostics_dir) / f"{r.image_id}.npz") for r in overlay_rows]
            if violation_grid(overlay_rows, maps, out_dir / "violations.png"):
                figures["violations"] = "violations.png"
                overlays["violations"] = [{n: float(v.sum()) for n, v in m.items()} for m in maps]
    report = {
        "title": title,
        "generated": _dt.datetime.now().isoformat(timespec="seconds"),
        "notes": list(notes or []),
        "dataset": dataset or {},
        "model": model or {},
        "targets": list(targets or []),
        "pseudo_masks": {"methods": methods, "num_images": nums.pop() if len(nums) == 1 else sorted(nums)},
        "stage2": {"description": stage2_description,
                   "methods": {k: metrics_dict(v) for k, v in (stage2_metrics or {}).items()}},
        "training": training,
        "overlays": overlays,
        "timings_s": dict(timings or {}),
        "figures": figures,
    }
    if extra:
        report.update(extra)
    write_json(out_dir / "report.json", report, default=_json_default)
    render_html(report, out_dir / "report.html")
    return report


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
