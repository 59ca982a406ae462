"""End-to-end demo (``make demo``) and real-data quality benchmark (``make bench-quality``).

``make demo`` (no official weights needed)::

    python -m wsss.apps.demo --work-dir work_dirs/demo

1. the **proxy SAM** checkpoint (``make proxy-sam``; trained here if missing) -- a small SAM-architecture
   *stand-in for pretrained SAM* that the project trains itself on synthetic *source* scenes;
2. synthetic *target* scenes (other shapes, textures, colours, clutter) with weak labels only
   (boxes, scribbles, clicks) for the ``train`` split, and held-out ``val`` scenes with ground truth;
3. classical baselines: box fill and GrabCut;
4. stage 1: embed, zero-shot pseudo-masks, logic fine-tuning of the mask decoder, fine-tuned
   pseudo-masks (stage 1's own pipeline functions);
5. pseudo-mask evaluation of every method on the same ``train`` images (ground truth is used only here);
6. a short stage 2 run (``configs/stage2/demo_deeplabv3plus_tiny.py``, mmsegmentation) on the fine-tuned
   pseudo-masks and on the box-filled masks, evaluated on the ``val`` ground truth;
7. ``report.html`` + ``report.json`` (+ PNGs) in the work dir.

Instances ride along: the baselines and stage 1 also write instance pseudo-labels (COCO JSON, one
object per box), evaluated by mask AP / AP50 / AP75 against the ground-truth instances of the same
images (:mod:`wsss.core.evaluation.instances`; SegmentationObject on synthetic scenes), and on synthetic
scenes a smoke Mask R-CNN (``configs/stage2/tiny_mask_rcnn_r18_smoke.py``, mmdet) is trained on the
fine-tuned instances and tested on the val scenes' instances. The report has an instance table beside
the semantic one.

With official weights and real data: ``--checkpoint sam_vit_h_4b8939.pth --model-type vit_h --data
data/VOCdevkit/VOC2012``. ``--bench-quality`` runs steps 3-5 and 7 on ``--data``/``--split`` (``make
bench-quality``). Every step prints its time; steps whose outputs exist are skipped (re-running is
cheap); ``--fresh`` starts over.

Parts: :mod:`.cli` (flags and the order of the steps), :mod:`.model` and :mod:`.sources` (which SAM,
which data), :mod:`.stage1_config`, :mod:`.steps` (baselines, stage 1, evaluation), :mod:`.stage2`,
:mod:`.targets` (the figures checked as met / NOT MET) and :mod:`.results` (report and printed table).
"""

from wsss.apps.demo.cli import build_parser, main

__all__ = ["build_parser", "main"]
