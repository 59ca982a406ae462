"""Applications on top of both stages: the demo and quality benchmark (:mod:`wsss.apps.demo`), the
constraint ablation (:mod:`wsss.apps.ablation`), what both start from (:mod:`wsss.apps.common`) and the
HTML report (:mod:`wsss.apps.report`)."""
