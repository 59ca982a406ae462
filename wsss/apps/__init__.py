"""Applications on top of both stages: the demo and quality benchmark (:mod:`wsss.apps.demo`) and
the HTML report (:mod:`wsss.apps.report`)."""
