"""Load mmengine checkpoints under torch >= 2.6 without giving up ``weights_only``.

mmengine 0.10.7 calls ``torch.load`` without ``weights_only`` (``True`` by default since torch 2.6),
and its checkpoints hold :class:`~mmengine.logging.HistoryBuffer` objects the weights-only unpickler
refuses. :func:`apply` (called by :func:`stage2_segnet.register.register_all`) makes
:func:`load_from_local` mmengine's loader of local files: ``weights_only=True`` with exactly the extra
globals such checkpoints contain; ``WSSS_TRUST_CHECKPOINTS=1`` loads other files unrestricted.
Details: docs/design.md ("Environment").
"""

from __future__ import annotations

import importlib
import os
import os.path as osp
import pickle
from typing import Any, Callable, List, Tuple, Union

import numpy as np
import torch

TRUST_ENV = "WSSS_TRUST_CHECKPOINTS"

_applied = False


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """Stands in for ``builtins.getattr`` while unpickling: only public HistoryBuffer methods."""
    from mmengine.logging import HistoryBuffer

    if obj is HistoryBuffer and not name.startswith("_") and callable(getattr(HistoryBuffer, name, None)):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f"getattr({obj!r}, {name!r}) is not allowed in a checkpoint")


def safe_globals() -> List[Union[Callable, Tuple[Callable, str]]]:
    """The allow-list handed to ``torch.serialization.safe_globals`` (objects or (object, name))."""
    from mmengine.logging import HistoryBuffer

    multiarray = importlib.import_module(
        "numpy._core.multiarray" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core.multiarray")
    allowed: List[Union[Callable, Tuple[Callable, str]]] = [HistoryBuffer, np.ndarray, np.dtype]
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed += [(multiarray._reconstruct, f"{mod}._reconstruct"), (multiarray.scalar, f"{mod}.scalar")]
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25; numpy 2 pickles dtypes by these classes
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    allowed.append((_history_buffer_getattr, "builtins.getattr"))
    return allowed


def _trusted() -> bool:
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


def load_from_local(filename: str, map_location=None) -> Any:
    """mmengine's local checkpoint loader, with ``weights_only=True`` and mmengine's allow-list."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f"{filename} can not be found.")
    if not hasattr(torch.serialization, "safe_globals"):  # torch < 2.5: weights_only is off by default
        return torch.load(filename, map_location=map_location)
    if _trusted():
        return torch.load(filename, map_location=map_location, weights_only=False)
    try:
        with torch.serialization.safe_globals(safe_globals()):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
        except Exception:  # not a zip checkpoint (legacy format): the message of err says enough
            unsafe = []
        why = f"it needs globals outside the allow-list: {', '.join(unsafe)}" if unsafe else f"torch said: {err}"
        raise pickle.UnpicklingError(
            f"refused to unpickle {filename} with weights_only=True; {why}. "
            f"If you trust this file, set {TRUST_ENV}=1 to load it with weights_only=False."
        ) from err


def apply() -> None:
    """Register :func:`load_from_local` for local paths in mmengine's ``CheckpointLoader`` (idempotent)."""
    global _applied
    if _applied:
        return
    from mmengine.runner.checkpoint import CheckpointLoader

    CheckpointLoader.register_scheme(prefixes="", loader=load_from_local, force=True)
    _applied = True
