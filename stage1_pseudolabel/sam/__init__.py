"""Stage-1 models: backends (SAM 1, SAM 2.1, HQ-SAM; every model type in one table,
:mod:`stage1_pseudolabel.sam.backends.variants`), checkpoint files, the encoder's input, prompts,
precision and attention options.

Nothing happens at import: ``segment_anything``, ``sam2`` and ``segment_anything_hq`` (and, where
torchvision or timm is missing, the project's stand-ins) are imported by
:mod:`stage1_pseudolabel.sam.modeling` the first time a model of that backend is built.
"""
