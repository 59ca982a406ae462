"""JSON helper shared by the COCO, LabelMe and What's-the-Point readers; every error names the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wsss.core.weak_labels.errors import MalformedAnnotationError, MissingFileError


def load_json(path: Path, *, what: str) -> Any:
    """The parsed content of ``path``; :class:`MissingFileError` / :class:`MalformedAnnotationError`."""
    if not path.is_file():
        raise MissingFileError(path, f"{what} not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedAnnotationError(path, f"malformed JSON: {exc}") from exc
