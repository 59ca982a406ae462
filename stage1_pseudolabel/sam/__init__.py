"""Stage-1 models: backends (SAM 1, SAM 2.1, HQ-SAM), checkpoint loading, the encoder's input, the
batched decoder call, precision and attention options.

Nothing happens at import: ``segment_anything``, ``sam2`` and ``segment_anything_hq`` (and, where
torchvision or timm is missing, the project's stand-ins) are imported by
:mod:`stage1_pseudolabel.sam.modeling` the first time a model of that backend is built.
"""
