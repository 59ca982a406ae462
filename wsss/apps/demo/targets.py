"""The demo's targets: the figures it checks (fine-tuned over zero-shot, over the baselines, in stage 2)
and prints as MET / NOT MET."""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

#: mIoU points the fine-tuned decoder must gain over the same model zero-shot, per pair of rows. The
#: proxy's pretraining gives other weights on another CPU type, seed or thread count: over proxy
#: seeds 0-2 and 1 or 2 threads (benchmarks/demo_spread.py) and one other machine the gains ran from
#: +6.6 to +12.1 without the CRF and from +4.9 to +15.1 with it (zero-shot + CRF moves, fine-tuned +
#: CRF stays near 95): each target sits under the smallest gain seen.
GAIN_TARGETS = {("fine-tuned", "zero-shot"): 5.0, ("fine-tuned + CRF", "zero-shot + CRF"): 3.0}
BASELINE_ROWS = ("box fill", "GrabCut")

Pair = Tuple[str, str]  # (fine-tuned row, zero-shot row of the same masks)


def target(name: str, measured: str, passed: bool) -> dict:
    return {"name": name, "measured": measured, "passed": bool(passed)}


def compared(a: float, b: float) -> str:
    return f"{a:.2f} vs {b:.2f} ({a - b:+.2f})"


def pairs_for(final: str) -> List[Pair]:
    """The fine-tuned / zero-shot row pairs of a run whose final method is ``final``."""
    return [("fine-tuned", "zero-shot")] + ([("fine-tuned + CRF", "zero-shot + CRF")] if final != "fine-tuned" else [])


def gain_targets(pseudo: Dict[str, object], pairs: Sequence[Pair]) -> List[dict]:
    out = []
    for ft_name, zs_name in pairs:
        ft, zs = pseudo[ft_name].miou, pseudo[zs_name].miou
        gain = GAIN_TARGETS[(ft_name, zs_name)]
        out.append(target(f"{ft_name} >= {zs_name} + {gain:g} mIoU points", compared(ft, zs), ft >= zs + gain))
    return out


def instance_targets(instances: Dict[str, dict], pairs: Sequence[Pair]) -> List[dict]:
    out = []
    for ft_name, zs_name in pairs:
        if ft_name in instances and zs_name in instances:
            ft, zs = instances[ft_name]["AP"], instances[zs_name]["AP"]
            out.append(target(f"{ft_name} > {zs_name} in instance mask AP", compared(ft, zs), ft > zs))
    return out


def baseline_targets(pseudo: Dict[str, object], final: str) -> List[dict]:
    ft = pseudo[final].miou
    return [target(f"{final} > {b}", f"{ft:.2f} vs {pseudo[b].miou:.2f}", ft > pseudo[b].miou)
            for b in BASELINE_ROWS if b in pseudo]


def stage2_targets(stage2: Dict[str, dict], final: str) -> List[dict]:
    if len(stage2) != 2:
        return []
    a, b = (r["mIoU"] for r in stage2.values())
    return [target(f"stage 2 on {final} > stage 2 on box fill", f"{a:.2f} vs {b:.2f}", a > b)]


def check_targets(*, pseudo: Dict[str, object], instances: Dict[str, dict], stage2: Dict[str, dict],
                  final: str) -> List[dict]:
    """Every target a run's figures allow, each ``{"name", "measured", "passed"}``; ``pseudo`` maps rows to
    pseudo-mask metrics, ``instances`` to instance mask AP rows, ``stage2`` to stage 2 val metrics."""
    pairs = pairs_for(final)
    return (gain_targets(pseudo, pairs) + instance_targets(instances, pairs) + baseline_targets(pseudo, final)
            + stage2_targets(stage2, final))


def target_line(t: dict) -> str:
    """One target as the demo prints it: name, measured figures, MET or NOT MET."""
    return f"  target: {t['name']:<60} {t['measured']:<28} {'MET' if t['passed'] else 'NOT MET'}"
