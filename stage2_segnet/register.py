"""Registers stage 2's additions with OpenMMLab: the one place stage 2 changes global state.

Our CLIs call :func:`register_all`; the configs' ``custom_imports`` name :mod:`stage2_segnet.plugin`,
which calls it, so mmseg's own ``tools/train.py`` with our configs gets the same registrations.
"""

from __future__ import annotations


def register_all() -> None:
    """Idempotent: mmseg registries (dataset, transform, head, metric; importing the modules registers
    them; TTA) and mmengine's ``weights_only`` checkpoint loader (:func:`stage2_segnet.compat.apply`)."""
    from . import compat, datasets, metrics, models, tta  # noqa: F401  (registration happens on import)

    compat.apply()



def register_instances() -> None:
    """Idempotent: :func:`register_all` and the instance network's additions in mmdet's registries
    (:mod:`stage2_segnet.instance_datasets`; kept apart so that semantic runs do not import mmdet)."""
    register_all()
    from . import instance_datasets  # noqa: F401  (registration happens on import)
