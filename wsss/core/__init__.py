"""The toolkit core: what both stages use. Imports :mod:`logic` at most, never a stage or an app.

* :mod:`wsss.core.weak_labels`: the annotation type, label sets and palettes, readers (VOC XML,
  ScribbleSup, What's-the-Point clicks, COCO, LabelMe), image reading;
* :mod:`wsss.core.frames`: every coordinate convention and conversion (pixel, SAM encoder, low-res);
* :mod:`wsss.core.masks`: label PNG I/O; :mod:`wsss.core.atomic`: atomic writes;
* :mod:`wsss.core.evaluation`: confusion matrix, IoU, folder evaluation;
* :mod:`wsss.core.crf`: dense CRF; :mod:`wsss.core.synthetic`: seeded synthetic scenes;
* :mod:`wsss.core.cli`: the CLI dialect (flags, logging, errors, exit status, shards, ranks).
"""
