"""Wall time of each demo step, printed as it ends and recorded for the report."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Dict, Iterator


class Timer:
    """Prints and records the wall time of each demo step."""

    def __init__(self) -> None:
        self.times: Dict[str, float] = {}
        self.start = time.perf_counter()

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        print(f"\n=== {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            self.times[name] = round(dt, 1)
            print(f"=== {name}: {dt:.1f} s (total {self.total():.1f} s)", flush=True)

    def total(self) -> float:
        """Seconds since the timer was made."""
        return time.perf_counter() - self.start
