"""YAML files with mmengine-style ``_base_`` inheritance: stage-1 configs and dataset descriptions.

``_base_: other.yaml`` (or a list, merged in order; paths relative to the file) is loaded first and the
file's own keys are merged over it: mappings merge key by key, everything else replaces, and
``_delete_: true`` inside a mapping replaces the base's mapping instead of merging into it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Tuple

import yaml


def merge_config(base: Dict[str, Any], overrides: Dict[str, Any]) -> Dict[str, Any]:
    """Recursive dict merge (mappings merge, everything else replaces; ``_delete_: true`` replaces)."""
    out = dict(base)
    for k, v in overrides.items():
        if isinstance(v, dict) and v.get("_delete_"):
            out[k] = {kk: vv for kk, vv in v.items() if kk != "_delete_"}
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_config(out[k], v)
        else:
            out[k] = v
    return out


def load_yaml_with_bases(
    path: Path,
    *,
    kind: str,
    missing: Callable[[Path], Exception],
    error: Callable[[Path, str], Exception],
    _chain: Tuple[Path, ...] = (),
) -> Dict[str, Any]:
    """The YAML mapping at ``path`` with its ``_base_`` files merged under it (bases first, in list order).

    Args:
        kind: what the file is, for messages (``"a stage-1 config"``).
        missing: the exception for a file (or base) that does not exist.
        error: the exception for an unusable file, from its path and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise missing(path)
    if path.resolve() in _chain:
        raise error(path, f"_base_ inherits from itself ({' -> '.join(str(p) for p in _chain)})")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise error(path, f"not valid YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise error(path, f"{kind} must be a YAML mapping")
    bases = loaded.pop("_base_", None) or []
    values: Dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else bases:
        values = merge_config(values, load_yaml_with_bases(path.parent / base, kind=kind, missing=missing, error=error,
                                                           _chain=_chain + (path.resolve(),)))
    return merge_config(values, loaded)
