"""Classical weak-label baselines evaluated with the same evaluator as stage 1.

* :func:`box_fill` -- every box filled with its class (smaller boxes drawn on top of larger ones).
* :func:`grabcut_fill` -- OpenCV GrabCut initialised from each box (inside probably-foreground,
  outside definite background) with scribble pixels as definite foreground / background, combined
  per image into one class map in the same smaller-on-top order.

Both take the RGB image and an :class:`~wsss.core.weak_labels.annotation.ImageAnnotation`
and return a ``uint8 [H, W]`` label map (0 background, 1..C classes).
"""

from stage1_pseudolabel.baselines.box_fill import box_fill, box_paint_order
from stage1_pseudolabel.baselines.grabcut import grabcut_fill, grabcut_object

METHODS = {"box": box_fill, "grabcut": grabcut_fill}

__all__ = ["METHODS", "box_fill", "box_paint_order", "grabcut_fill", "grabcut_object"]
