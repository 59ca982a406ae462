"""What each method of the demo wrote: its pseudo-mask folder and its instance pseudo-label file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Mapping


@dataclass
class MethodOutputs:
    """Folders of pseudo-masks and files of instance pseudo-labels, by the method's name in the tables."""

    masks: Dict[str, Path] = field(default_factory=dict)
    instances: Dict[str, Path] = field(default_factory=dict)

    def add(self, name: str, *, masks: Path, instances: Path) -> None:
        self.masks[name] = masks
        self.instances[name] = instances

    def add_generated(self, name: str, summary: Mapping[str, str]) -> None:
        """A method written by stage 1's ``run_generate`` (its summary names both outputs)."""
        self.add(name, masks=Path(summary["output_dir"]), instances=Path(summary["instances_file"]))
