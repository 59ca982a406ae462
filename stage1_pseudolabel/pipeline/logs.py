"""Console logging for the stage-1 CLIs, and the JSON-lines training log."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
import sys
from typing import Any, Callable, Dict


def setup_logging(level: int = logging.INFO) -> None:
    """One line per message with time and level; under torchrun only rank 0 logs below WARNING."""
    rank = int(os.environ.get("RANK", 0))
    logging.basicConfig(
        level=level if rank == 0 else logging.WARNING,
        format=f"%(asctime)s %(levelname)s{'' if rank == 0 else f' [rank {rank}]'} %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


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


def run_cli(body: Callable[[], int]) -> int:
    """Run a CLI body; expected failures (bad checkpoint, refused cache, bad input, full disk) print one
    clear ``error:`` line and return 2 instead of a traceback."""
    from stage1_pseudolabel.pipeline.cache import CacheMismatchError
    from stage1_pseudolabel.sam.checkpoint import CheckpointError
    from stage1_pseudolabel.weak_labels.errors import WeakLabelError

    try:
        return body()
    except (CheckpointError, CacheMismatchError, WeakLabelError, FileNotFoundError, ValueError, ImportError,
            OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
