"""``report.html``: a single offline page (inline CSS, no JavaScript, no CDN) with PNGs referenced relatively."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Dict, List

from wsss.apps.report.overlays import class_legend

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;max-width:1400px;color:#222}
h1{font-size:1.6em} h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:0.85em;margin:0.6em 0}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
thead th{background:#f3f3f3;position:sticky;top:0}
td.best{font-weight:bold;background:#e8f4e8}
.scroll{overflow-x:auto}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:0.5em 1em;margin:1em 0}
.pass{color:#1a7f37;font-weight:bold} .fail{color:#c62828;font-weight:bold}
img{max-width:100%;border:1px solid #ddd}
.legend span{display:inline-block;margin:0 0.8em 0.3em 0;font-size:0.8em}
.legend i{display:inline-block;width:0.9em;height:0.9em;margin-right:0.3em;vertical-align:middle;border:1px solid #888}
code{background:#f4f4f4;padding:0 0.2em}
"""


def _e(x) -> str:
    return html.escape(str(x))


def _fmt(v, digits: int = 1) -> str:
    if v is None:
        return "n/a"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return _e(v)
    return "n/a" if f != f else f"{f:.{digits}f}"


def _metrics_table(methods: Dict[str, dict], *, caption: str) -> str:
    """Methods as rows; mIoU, pixel accuracy and every class's IoU as columns; best value bold."""
    if not methods:
        return "<p>(no results)</p>"
    classes: List[str] = []
    for m in methods.values():
        for c in (m.get("per_class_iou") or {}):
            if c not in classes:
                classes.append(c)
    cols = ["mIoU", "pixel_accuracy"] + [f"iou:{c}" for c in classes]

    def value(m: dict, col: str):
        if col.startswith("iou:"):
            return (m.get("per_class_iou") or {}).get(col[4:])
        return m.get(col)

    best = {}
    for col in cols:
        vals = [value(m, col) for m in methods.values()]
        vals = [v for v in vals if v is not None and v == v]
        best[col] = max(vals) if vals else None
    head = "".join(f"<th>{_e(c[4:] if c.startswith('iou:') else c.replace('_', ' '))}</th>" for c in cols)
    rows = []
    for name, m in methods.items():
        cells = []
        for col in cols:
            v = value(m, col)
            cls = ' class="best"' if v is not None and best[col] is not None and v == best[col] and len(methods) > 1 else ""
            cells.append(f"<td{cls}>{_fmt(v)}</td>")
        n = m.get("num_images")
        rows.append(f"<tr><td>{_e(name)}{f' <small>({n} img)</small>' if n else ''}</td>{''.join(cells)}</tr>")
    return (f'<div class="scroll"><table><caption style="caption-side:bottom;text-align:left">{_e(caption)}</caption>'
            f"<thead><tr><th>method</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def _kv_table(d: Dict[str, object]) -> str:
    rows = "".join(f"<tr><td>{_e(k)}</td><td style='text-align:left'>{_e(v)}</td></tr>" for k, v in d.items())
    return f"<table><tbody>{rows}</tbody></table>"


def _ap_table(rows: Dict[str, dict], caption: str) -> str:
    cols = ("AP", "AP50", "AP75")
    best = {c: max((r.get(c) for r in rows.values() if r.get(c) is not None), default=None) for c in cols}
    out = [f"<table><caption>{_e(caption)}</caption><thead><tr><th>method</th>"
           + "".join(f"<th>{c}</th>" for c in cols) + "<th>objects</th></tr></thead><tbody>"]
    for name, r in rows.items():
        cells = "".join(f"<td>{'<b>' if r.get(c) is not None and r.get(c) == best[c] else ''}{_fmt(r.get(c))}"
                        f"{'</b>' if r.get(c) is not None and r.get(c) == best[c] else ''}</td>" for c in cols)
        out.append(f"<tr><td>{_e(name)}</td>{cells}<td>{_e(r.get('pred_objects', ''))}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _instances_section(inst: dict) -> list:
    """The instance table (mask AP of the instance pseudo-labels) and the instance network's AP."""
    if not inst.get("methods"):
        return []
    gt = inst.get("ground_truth") or {}
    parts = ["<h2>Instance pseudo-labels (mask AP)</h2>",
             _ap_table(inst["methods"], caption=(
                 f"COCO mask AP / AP50 / AP75 (%) on the same images, against {gt.get('note', 'ground-truth instances')}"
                 f" ({', '.join(f'{n} image(s): {k}' for k, n in (gt.get('gt_source') or {}).items() if n)});"
                 f" scores: {inst.get('score', '')}."))]
    if inst.get("stage2"):
        parts.append("<h3>Stage 2: instance network trained on instance pseudo-labels</h3>")
        if inst.get("stage2_description"):
            parts.append(f"<p>{_e(inst['stage2_description'])}</p>")
        parts.append(_ap_table(inst["stage2"], caption="COCO mask AP (%) of the network on held-out instances."))
    return parts


def render_html(report: dict, out_path: Path) -> Path:
    """Write ``report.html`` from the report dict (see :func:`wsss.apps.report.build_report`)."""
    out_path = Path(out_path)
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(report.get('title', 'report'))}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>{_e(report.get('title', 'Report'))}</h1>"]
    parts.append(f"<p><small>generated {_e(report.get('generated', ''))}</small></p>")
    for note in report.get("notes", []):
        parts.append(f"<div class='note'>{_e(note)}</div>")

    targets = report.get("targets") or []
    if targets:
        parts.append("<h2>Targets</h2><table><thead><tr><th>target</th><th>measured</th><th>result</th></tr></thead><tbody>")
        for t in targets:
            ok = t.get("passed")
            res = "<span class='pass'>met</span>" if ok else ("<span class='fail'>not met</span>" if ok is not None else "n/a")
            parts.append(f"<tr><td>{_e(t.get('name'))}</td><td style='text-align:left'>{_e(t.get('measured', ''))}</td><td>{res}</td></tr>")
        parts.append("</tbody></table>")

    info = {}
    for section in ("dataset", "model"):
        for k, v in (report.get(section) or {}).items():
            info[f"{section}: {k}"] = v
    if info:
        parts.append("<h2>Setup</h2>" + _kv_table(info))

    pm = report.get("pseudo_masks") or {}
    parts.append("<h2>Pseudo-mask quality (stage 1 and baselines)</h2>")
    weak = (report.get("dataset") or {}).get("weak_labels")
    parts.append(_metrics_table(pm.get("methods", {}), caption=(
        f"IoU (%) against ground truth on the same {pm.get('num_images', '?')} images for every method"
        + (f", all from the same weak labels ({weak})" if weak else "")
        + "; best per column in bold. 255 (void) pixels of the ground truth are not counted.")))
    figs = report.get("figures") or {}
    if figs.get("pseudo_bars"):
        parts.append(f"<p><img src='{_e(figs['pseudo_bars'])}' alt='pseudo-mask mIoU'></p>")

    s2 = report.get("stage2") or {}
    if s2.get("methods"):
        parts.append("<h2>Stage 2: segmentation network trained on pseudo-masks</h2>")
        if s2.get("description"):
            parts.append(f"<p>{_e(s2['description'])}</p>")
        parts.append(_metrics_table(s2["methods"], caption="IoU (%) of the stage 2 network on held-out ground truth, by the pseudo-masks it was trained on."))

    parts += _instances_section(report.get("instances") or {})

    tr = report.get("training") or {}
    parts.append("<h2>Logic fine-tuning: truth and loss per constraint</h2>")
    if figs.get("training_curves"):
        parts.append(f"<p><img src='{_e(figs['training_curves'])}' alt='training curves'></p>")
        if tr.get("log"):
            parts.append(f"<p><small>from <code>{_e(tr['log'])}</code> ({tr.get('num_records', '?')} records)</small></p>")
    else:
        parts.append("<p>(no training log)</p>")

    ov = report.get("overlays") or {}
    parts.append("<h2>Examples: best, median and worst images</h2>")
    if figs.get("overlays"):
        if ov.get("ranked_by"):
            parts.append(f"<p>Ranked by the per-image mIoU of <b>{_e(ov['ranked_by'])}</b>.</p>")
        parts.append(f"<p><img src='{_e(figs['overlays'])}' alt='overlays'></p>")
        legend = ov.get("legend") or class_legend(present=None)[:0]
        if legend:
            parts.append("<p class='legend'>" + "".join(f"<span><i style='background:{c}'></i>{_e(n)}</span>" for n, c in legend) + "</p>")
    else:
        parts.append("<p>(no overlays)</p>")
    if figs.get("violations"):
        parts.append("<h2>Where the constraints are violated (fine-tuned decoder, same images)</h2>")
        parts.append("<p>Per constraint, minus the log-truth of its groundings summed at each low-res cell "
                     "(<code>wsss-generate --diagnostics</code>); brighter is more violated, one scale per column.</p>")
        parts.append(f"<p><img src='{_e(figs['violations'])}' alt='violation maps'></p>")

    timings = report.get("timings_s") or {}
    if timings:
        parts.append("<h2>Timings</h2>" + _kv_table({k: f"{v:.1f} s" if isinstance(v, (int, float)) else v for k, v in timings.items()}))
    parts.append("<p><small>Numbers: <code>report.json</code> next to this page.</small></p></body></html>")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text("\n".join(parts), encoding="utf-8")
    return out_path
