"""End-to-end demo (``make demo``) and real-data quality benchmark (``make bench-quality``).

Its steps and flags: ``wsss-demo --help``; what it runs and reports: docs/method.md, "The proxy SAM".
Parts: :mod:`.cli` (flags, the order of the steps), :mod:`.model` and :mod:`.sources` (which SAM,
which data), :mod:`.stage1_config`, :mod:`.steps` (baselines, stage 1, evaluation), :mod:`.stage2`,
:mod:`.targets` (the figures checked as met / NOT MET) and :mod:`.results` (report, printed table).
"""

from wsss.apps.demo.cli import build_parser, main

__all__ = ["build_parser", "main"]
