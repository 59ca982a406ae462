"""How far the demo's figures move between runs: proxy pretraining seeds and thread counts.

The proxy SAM's pretraining does not give the same weights on another CPU type or thread count
(float sums in another order), so a newcomer's demo lands somewhere in a range. This runs the demo
once per ``(seed, threads)`` pair, each in its own work dir with its own proxy checkpoint, and prints
every pseudo-mask mIoU, instance AP and target gap per run, then the range over the runs::

    python benchmarks/demo_spread.py --runs 0:2,1:2,2:2,0:1          # seed:threads pairs
    python benchmarks/demo_spread.py --runs 0:2 --with-stage2         # stage 2 too (slower)

A run whose ``report.json`` exists is read, not run again (delete its folder to redo it). The table
also goes to ``<work>/spread.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple


def parse_runs(text: str) -> List[Tuple[int, int]]:
    """``"0:2,1:2"`` -> ``[(0, 2), (1, 2)]`` (proxy seed, threads)."""
    runs = []
    for item in text.split(","):
        seed, _, threads = item.partition(":")
        runs.append((int(seed), int(threads or 2)))
    return runs


def run_demo(work: Path, seed: int, threads: int, extra: Sequence[str]) -> dict:
    out = work / f"seed{seed}_threads{threads}"
    report = out / "report.json"
    if not report.is_file():
        cmd = [sys.executable, "-m", "wsss.apps.demo", "--work-dir", str(out), "--proxy-seed", str(seed),
               "--proxy-checkpoint", str(out / "proxy_sam.pth"), "--threads", str(threads), "--no-progress", *extra]
        print("$ " + " ".join(cmd), flush=True)
        start = time.perf_counter()
        with open(work / f"seed{seed}_threads{threads}.log", "w") as log:
            rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
        if rc != 0:
            raise SystemExit(f"the demo failed (exit {rc}); see {log.name}")
        print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
    return json.loads(report.read_text())


def figures(report: dict) -> Dict[str, float]:
    """The figures a newcomer reads, by name, from one demo report."""
    out = {f"mIoU {k}": m["mIoU"] for k, m in report["pseudo_masks"]["methods"].items()}
    out.update({f"mask AP {k}": m["AP"] for k, m in report.get("instances", {}).get("methods", {}).items()})
    out.update({f"stage 2 {k}": m["mIoU"] for k, m in report["stage2"]["methods"].items()})
    summ = report["model"].get("proxy held-out object IoU (source / target)")
    if summ:
        src, tgt = (float(v) for v in summ.split(" / "))
        out["proxy IoU source"], out["proxy IoU target"] = src, tgt
    for ft, zs in (("fine-tuned", "zero-shot"), ("fine-tuned + CRF", "zero-shot + CRF")):
        for metric, short in (("mIoU", "mIoU"), ("mask AP", "AP")):
            if f"{metric} {ft}" in out and f"{metric} {zs}" in out:
                out[f"gap {short} {ft} - {zs}"] = out[f"{metric} {ft}"] - out[f"{metric} {zs}"]
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default="0:2,1:2,2:2,0:1", help="proxy seed:threads pairs, comma-separated")
    p.add_argument("--work-dir", default="work_dirs/demo_spread")
    p.add_argument("--with-stage2", action="store_true", help="also train stage 2 (about 9 more minutes a run)")
    args = p.parse_args(argv)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    extra = [] if args.with_stage2 else ["--skip-stage2"]
    runs = parse_runs(args.runs)
    table = {f"seed {s}, {t} thread(s)": figures(run_demo(work, s, t, extra)) for s, t in runs}
    names = [n for n in next(iter(table.values()))]
    width = max(len(n) for n in names)
    print(f"\n{'':<{width}}  " + "  ".join(f"{k:>18}" for k in table) + f"  {'range':>16}")
    spread = {}
    for n in names:
        vals = [row.get(n) for row in table.values()]
        present = [v for v in vals if v is not None]
        spread[n] = [min(present), max(present)]
        cells = "  ".join(f"{v:18.2f}" if v is not None else f"{'-':>18}" for v in vals)
        print(f"{n:<{width}}  {cells}  {min(present):7.2f}..{max(present):<7.2f}")
    (work / "spread.json").write_text(json.dumps({"runs": table, "range": spread}, indent=2) + "\n")
    print(f"\nwrote {work / 'spread.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
