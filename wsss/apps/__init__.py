"""Applications on top of both stages: the demo and quality benchmark (:mod:`wsss.apps.demo`), the
constraint ablation (:mod:`wsss.apps.ablation`), what both start from (:mod:`wsss.apps.common`), the
HTML report (:mod:`wsss.apps.report`) and our VOC figures beside the papers' (:mod:`wsss.apps.voc_table`)."""
