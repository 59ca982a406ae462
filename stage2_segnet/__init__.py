"""Stage 2: DeepLab / Mask2Former trained through mmsegmentation on stage 1's pseudo-masks.

Importing the package makes mmengine's checkpoint loading work under torch >= 2.6 (see
:mod:`stage2_segnet.compat`). ``stage2_segnet.register`` (named in the configs' ``custom_imports``)
registers the dataset, transform, head and metric in mmseg's registries.
"""

try:  # the OpenMMLab stack is optional for the rest of the toolkit
    import mmengine  # noqa: F401
except ImportError:  # pragma: no cover
    pass
else:
    from .compat import apply as _apply_checkpoint_compat

    _apply_checkpoint_compat()
