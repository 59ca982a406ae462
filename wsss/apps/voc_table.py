"""``wsss-voc-table``: our PASCAL VOC 2012 figures beside the papers', as one Markdown table.

    wsss-voc-table [--stage1 <WORK>/pseudo_miou.json] [--stage2-val <STAGE2_WORK>/test_val_tta_metrics.json]
                   [--stage2-test <STAGE2_WORK>/test_test_tta_metrics.json] [--test-miou 78.0]
                   [--setting supervision=boxes+scribbles ...] [--papers FILE] [--out FILE.md|FILE.json]

Rows: the papers of ``configs/reports/voc2012_papers.yaml`` (each figure with where it was read), then
ours. Columns: supervision, pseudo-label mIoU (and the split it was measured on), val mIoU, test mIoU,
and the setting that decides what is comparable: backbone, initialisation, schedule, TTA, CRF.

Our row comes from the result files the commands write:

* ``--stage1``: wsss-evaluate's ``--json`` (``make stage1-evaluate``: ``<WORK>/pseudo_miou.json``): the
  pseudo-label mIoU; its split is named from the image count (1,464 train, 10,582 train_aug) unless
  ``--setting pseudo_label_split=...`` names it.
* ``--stage2-val``: wsss-stage2-test's ``test_val[_tta][_crf]_metrics.json``: the val mIoU, TTA, CRF and
  the checkpoint (its iteration, and whether it is the last one or the one val picked); backbone and
  initialisation are read from the config the file names.
* ``--stage2-test``: the same file of the test-split run whose predictions went to the server: its TTA
  and CRF (a table cell says so when they differ from val's); ``--test-miou``: the server's figure.

``--setting KEY=VALUE`` sets or overrides a cell of our row. ``--out`` also writes the table to a file:
JSON for ``.json``, the Markdown otherwise. Exit status 2, with the file named, for a missing or
malformed file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import yaml

from wsss.core.atomic import atomic_write, write_json
from wsss.core.cli import run_cli, silence_known_warnings

REPO_ROOT = Path(__file__).resolve().parents[2]  # wsss/apps/voc_table.py -> the repository
PAPERS = REPO_ROOT / "configs" / "reports" / "voc2012_papers.yaml"
#: image count of a pseudo-label evaluation -> the VOC split it is (the official lists' sizes)
SPLIT_SIZES = {1464: "train", 10582: "train_aug"}
Flag = Union[bool, str, None]


@dataclasses.dataclass
class Row:
    """One row: a paper's entry in the papers' YAML (these fields are its keys) or ours. Figures are mIoU
    in %; None is a cell the source does not state."""

    name: str
    title: Optional[str] = None  #: the paper's title
    venue: Optional[str] = None  #: conference or journal (or "arXiv preprint")
    year: Optional[int] = None
    arxiv: Optional[str] = None  #: arXiv id, e.g. "1503.01640"
    url: Optional[str] = None  #: where the paper is, when it has no arXiv id
    supervision: Optional[str] = None  #: boxes, scribbles, points, image tags, or a combination
    pseudo_label_miou: Optional[float] = None  #: the pseudo-labels' mIoU against the ground truth
    pseudo_label_split: Optional[str] = None  #: the split that was measured on (train, train_aug)
    val_miou: Optional[float] = None  #: the segmentation network's mIoU on VOC val (1,449 images)
    test_miou: Optional[float] = None  #: its mIoU on VOC test (the evaluation server)
    backbone: Optional[str] = None  #: network and backbone
    init: Optional[str] = None  #: the backbone's initialisation (ImageNet, COCO, a file)
    schedule: Optional[str] = None  #: training length and which checkpoint was tested
    tta: Flag = None  #: multi-scale / flip test-time augmentation (true / false, or a text)
    crf: Flag = None  #: dense-CRF post-processing (true / false, or a text)
    source: Optional[str] = None  #: where the figures were read (papers) or which files (ours)


PAPER_KEYS = tuple(f.name for f in dataclasses.fields(Row))
FIGURES = ("pseudo_label_miou", "val_miou", "test_miou")
#: the cells of our row that --setting may set
SETTING_KEYS = ("name", "supervision", "pseudo_label_split", "backbone", "init", "schedule", "tta", "crf")
COLUMNS = ("method", "supervision", "pseudo-label mIoU", "val mIoU", "test mIoU", "backbone", "init",
           "schedule", "TTA", "CRF", "source")


def load_papers(*, path: Path) -> List[Row]:
    """The papers' rows of the YAML at ``path`` (a list of entries with :data:`PAPER_KEYS`).

    Raises:
        FileNotFoundError: no such file. ValueError: not a list of entries, an unknown key, or a figure
        that is not a number; each names the file (and the entry).
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the papers' figures table not found")
    entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of paper entries")
    rows = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not entry.get("name"):
            raise ValueError(f"{path}: entry {number} is not a mapping with a name")
        unknown = sorted(set(entry) - set(PAPER_KEYS))
        if unknown:
            raise ValueError(f"{path}: {entry['name']}: unknown keys {unknown} (known: {', '.join(PAPER_KEYS)})")
        for key in FIGURES:
            value = entry.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"{path}: {entry['name']}: {key} must be a number or empty, got {value!r}")
        rows.append(Row(**entry))
    return rows


def read_result(*, path: Path, what: str) -> Dict[str, Any]:
    """The JSON object of a result file ``path`` (``what`` says which command writes it).

    Raises:
        FileNotFoundError / ValueError: missing, or not a JSON object; the message names the file.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found ({what})")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: not a JSON object ({what})")
    return record


def stage1_figures(*, path: Path) -> Tuple[Optional[float], str]:
    """``(mIoU, split)`` of a wsss-evaluate ``--json`` file: the split it records, else the one its
    image count names."""
    record = read_result(path=path, what="wsss-evaluate --json writes it, make stage1-evaluate as "
                                         "<WORK>/pseudo_miou.json")
    if "mIoU" not in record or not isinstance(record.get("num_images"), int):
        raise ValueError(f"{path}: not a wsss-evaluate --json file (it has no mIoU and num_images)")
    count = record["num_images"]
    return record["mIoU"], record.get("split") or SPLIT_SIZES.get(count, f"{count} images")


def stage2_record(*, path: Path, split: str) -> Dict[str, Any]:
    """A wsss-stage2-test result file of ``split`` (metrics, checkpoint, config, tta, crf)."""
    record = read_result(path=path, what=f"wsss-stage2-test --split {split} writes it as "
                                         f"<work-dir>/test_{split}[_tta][_crf]_metrics.json")
    missing = [k for k in ("metrics", "split", "tta", "crf") if k not in record]
    if missing:
        raise ValueError(f"{path}: not a wsss-stage2-test result file (no {', '.join(missing)})")
    if record["split"] != split:
        raise ValueError(f"{path}: reports split {record['split']!r}, not {split}")
    return record


def schedule_text(*, record: Dict[str, Any]) -> Optional[str]:
    """The tested checkpoint in words: ``20k it, last iteration`` / ``best on val, at 16k it``."""
    checkpoint = str(record.get("checkpoint") or "")
    match = re.search(r"iter_(\d+)\.pth$", checkpoint)
    if not match:
        return Path(checkpoint).name or None
    iters = int(match.group(1))
    at = f"{iters // 1000}k it" if iters % 1000 == 0 else f"{iters} it"
    choice = record.get("checkpoint_choice", "")
    if choice.startswith("best"):
        return f"best on val, at {at}"
    return f"{at}, last iteration" if choice == "last iteration" else f"{at} ({Path(checkpoint).name})"


def config_setting(*, config: Optional[str]) -> Dict[str, str]:
    """``{"backbone", "init"}`` read from the stage-2 config a result file names; empty (with a note on
    stderr) when that file is not here, so that ``--setting`` can give them."""
    if not config or not Path(config).is_file():
        print(f"note: the stage-2 config {config!r} is not here: backbone and init come from --setting only",
              file=sys.stderr)
        return {}
    silence_known_warnings()
    from mmengine.config import Config

    from stage2_segnet.checks import pretrained_paths

    model = Config.fromfile(config, import_custom_modules=False).model
    backbone, head = model.get("backbone") or {}, (model.get("decode_head") or {}).get("type")
    depth = f"-{backbone['depth']}" if backbone.get("depth") else ""
    names = [Path(p).name for p in pretrained_paths(model)]
    return {"backbone": ", ".join(x for x in (head, f"{backbone.get('type', '')}{depth}") if x),
            "init": ", ".join(names) or "none (from scratch)"}


def combined(*, val: Flag, test: Flag) -> Flag:
    """One TTA / CRF cell for the val and the test run: their value, or both when they differ."""
    if val is None or test is None or val == test:
        return val if val is not None else test
    return f"val {yes_no(val)}, test {yes_no(test)}"


def yes_no(value: Flag) -> str:
    """``yes`` / ``no`` for a flag, empty for None, a text as it is."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def parse_settings(*, items: Sequence[str]) -> Dict[str, str]:
    """``["supervision=boxes", ...]`` -> ``{"supervision": "boxes"}``; keys from :data:`SETTING_KEYS`."""
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in SETTING_KEYS:
            raise ValueError(f"--setting {item!r}: expected KEY=VALUE with KEY one of {', '.join(SETTING_KEYS)}")
        settings[key] = value
    return settings


def our_row(*, args: argparse.Namespace) -> Optional[Row]:
    """Our row from the result files and flags of ``args``; None when none was given."""
    if not (args.stage1 or args.stage2_val or args.stage2_test or args.test_miou is not None):
        return None
    row, sources = Row(name="ours (this toolkit)"), []
    if args.stage1:
        row.pseudo_label_miou, row.pseudo_label_split = stage1_figures(path=args.stage1)
        sources.append(f"pseudo-labels {args.stage1}")
    val = stage2_record(path=args.stage2_val, split="val") if args.stage2_val else {}
    test = stage2_record(path=args.stage2_test, split="test") if args.stage2_test else {}
    if val:
        row.val_miou = val["metrics"].get("mIoU")
        row.schedule = schedule_text(record=val)
        row = dataclasses.replace(row, **config_setting(config=val.get("config")))
        sources.append(f"val {args.stage2_val}")
    if test:
        row.test_miou = test["metrics"].get("mIoU")
        row.schedule = row.schedule or schedule_text(record=test)
        sources.append(f"test predictions {args.stage2_test}")
    row.tta = combined(val=val.get("tta"), test=test.get("tta"))
    row.crf = combined(val=val.get("crf"), test=test.get("crf"))
    if args.test_miou is not None:
        row.test_miou = args.test_miou
        sources.append("test mIoU entered by hand (--test-miou)")
    row.source = "; ".join(sources)
    return dataclasses.replace(row, **parse_settings(items=args.setting))


def cell(value: Any) -> str:
    """A Markdown cell: one decimal for figures, yes / no for flags, empty for None, ``|`` escaped."""
    if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
        return f"{value:.1f}"
    return yes_no(value).replace("|", "\\|")


def citation(*, row: Row) -> str:
    """``"Title", VENUE YEAR, arXiv:ID`` as far as the row knows them; its name without a title."""
    where = " ".join(str(x) for x in (row.venue, row.year) if x)
    link = f"arXiv:{row.arxiv}" if row.arxiv else row.url
    return ", ".join(x for x in (f'"{row.title}"' if row.title else row.name, where, link) if x)


def markdown(*, rows: Sequence[Row]) -> str:
    """The table (one line per row, its source a numbered note) and the notes under it."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    notes = []
    for number, row in enumerate(rows, 1):
        pseudo = cell(row.pseudo_label_miou)
        if pseudo and row.pseudo_label_split:
            pseudo += f" ({cell(row.pseudo_label_split)})"
        cells = [cell(row.name), cell(row.supervision), pseudo] + [
            cell(v) for v in (row.val_miou, row.test_miou, row.backbone, row.init, row.schedule, row.tta, row.crf)]
        lines.append("| " + " | ".join(cells + [f"[{number}]"]) + " |")
        notes.append(f"[{number}] {citation(row=row)}: {row.source or 'no source given'}")
    return "\n".join(lines + [""] + notes) + "\n"


def write_table(*, path: Path, rows: Sequence[Row], text: str) -> None:
    """``path``: JSON (``.json``: the columns and every row's fields) or the Markdown ``text``."""
    if path.suffix == ".json":
        write_json(path, {"columns": list(COLUMNS), "rows": [dataclasses.asdict(r) for r in rows]})
    else:
        with atomic_write(path, durable=False) as handle:
            handle.write(text.encode("utf-8"))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wsss-voc-table", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage1", type=Path, help="wsss-evaluate --json of the pseudo-labels (<WORK>/pseudo_miou.json)")
    p.add_argument("--stage2-val", type=Path, help="wsss-stage2-test's test_val[_tta][_crf]_metrics.json")
    p.add_argument("--stage2-test", type=Path, help="wsss-stage2-test's test_test[_tta][_crf]_metrics.json")
    p.add_argument("--test-miou", type=float, default=None, help="the evaluation server's test mIoU (%%)")
    p.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                   help=f"a cell of our row ({', '.join(SETTING_KEYS)}); repeatable")
    p.add_argument("--papers", type=Path, default=PAPERS, help="the papers' figures (default: %(default)s)")
    p.add_argument("--out", type=Path, default=None, help="also write the table here (.json: JSON, else Markdown)")
    return p


def run(*, args: argparse.Namespace) -> int:
    rows = load_papers(path=args.papers)
    ours = our_row(args=args)
    rows += [ours] if ours is not None else []
    text = markdown(rows=rows)
    print(text, end="")
    if args.out is not None:
        write_table(path=args.out, rows=rows, text=text)
        print(f"wrote {args.out}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: run(args=args))


if __name__ == "__main__":
    sys.exit(main())
