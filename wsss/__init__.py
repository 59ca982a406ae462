"""The toolkit's own layers around the two stages (see README, "Layout").

* :mod:`wsss.core`: the ground both stages stand on (label sets, weak-label readers, mask I/O, atomic
  writes, evaluation, dense CRF, coordinate frames, synthetic scenes, CLI helpers). It imports
  nothing of the stages.
* :mod:`wsss.apps`: applications on top of both stages (the demo, the quality benchmark, the report).

Importing a package of the toolkit has no side effect.
"""
