"""Stage 2: DeepLab / Mask2Former trained through mmsegmentation on stage 1's pseudo-masks.

Importing the package does nothing. :func:`stage2_segnet.register.register_all` (run by the CLIs,
and by importing ``stage2_segnet.register``, which the configs' ``custom_imports`` name) registers
the dataset, transform, head and metric in mmseg's registries and makes mmengine's checkpoint
loading work under torch >= 2.6 (see :mod:`stage2_segnet.compat`).
"""
