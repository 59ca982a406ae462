"""The built-in constraint types restated in the formula language: the same knowledge, the same
log-truth and gradient (``tests/logic/test_formula.py`` checks this on real VOC images, and
``benchmarks/bench_logic.py --formulas`` times both). Each entry: the type's options, and the formula
for those options."""

from __future__ import annotations

from typing import Any, Dict, Tuple

RESTATED: Dict[str, Tuple[Dict[str, Any], str]] = {
    "background": ({}, "forall p in outside_boxes: background(p)"),
    "box_tightness": ({}, "forall b in boxes: (forall r in rows(b): exists p in r: class_of(b, p)) "
                          "and (forall c in cols(b): exists p in c: class_of(b, p))"),
    "scribbles": ({}, "forall k in classes: forall p in scribble(k): k(p)"),
    "neighbourhood": ({"connectivity": 8}, "forall k in classes: forall p in pixels: (k(p) -> exists q in N8(p): k(q)) "
                                           "and ((forall q in N8(p): k(q)) -> k(p))"),
    "border_precision": ({"connectivity": 4}, "forall p in pixels: forall q in next4(p): same_superpixel(p, q) -> "
                                              "exists k in classes: k(p) and k(q)"),
    "box_fill": ({"fraction": 0.6}, "forall b in boxes: most(0.6) p in box(b): class_of(b, p)"),
    "zero_shot_anchor": ({"threshold": 0.7}, "forall k in classes: forall p in pixels: confident(k, p, 0.7) -> k(p)"),
    "colour_affinity": ({"theta": 2.0, "threshold": 0.3, "dilation": 2},
                        "forall p in pixels: forall q in next8(p, 2): (in_box(p) or in_box(q)) and similar(p, q, 2.0, 0.3) -> "
                        "exists k in classes: k(p) and k(q)"),
}
