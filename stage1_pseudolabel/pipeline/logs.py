"""The JSON-lines training log of stage 1 (console logging is :func:`wsss.core.cli.setup_logging`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict


class JsonLinesLog:
    """Appends one JSON object per line and flushes it (a killed run keeps every finished line)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: Dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()

    def truncate_after(self, step: int) -> None:
        """Drop lines with ``step`` greater than ``step`` (after a resume from an earlier checkpoint)."""
        if not self.path.is_file():
            return
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    keep.append(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(k + "\n" for k in keep))
        tmp.replace(self.path)
