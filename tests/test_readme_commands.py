"""README.md's commands, run. The ```bash blocks are read from the README (nothing is copied here), so
what this file runs is what a reader copies.

Every `make ...` line (`make a && make b` is two) is dry-run: `make -n` with the line's arguments exits
0, and each command make would run is checked without doing its work:

- `python -m MODULE ARGS` by that module's own argument handling: stage 1's embed / train / generate
  run their `main` up to the built config (the --config file read, every key and --set validated),
  stage 2's train / test parse with their `parse_args` and load their mmengine config, the demo parses
  with `wsss.apps.demo.cli.build_parser` and its flag check, wsss-evaluate / wsss-voc-data /
  wsss-stage2-submit run their `main` with `run_cli` recording the work instead of running it, and
  pytest parses its arguments by collecting an empty folder (its `-m` names registered markers);
- `bash scripts/download_sam_weights.sh` by its own --dry-run: the file it would write is the
  SAM_CHECKPOINT the README's lines name and the checkpoint stage 1 reads for the same SAM_MODEL;
- config files and dataset descriptions named on the line exist; the one the README's
  `cat > ... <<'YAML'` block writes is written to tmp by that block and loads as a description.

Stage 1's steps, wsss-voc-data and wsss-stage2-submit build their parser inside `main` (no parser
function to call), hence the stubbed work; the demo's and stage 2's checks stop at their parsers and
configs (the demo's model, data and networks are not built).

The own-data example (that description and the `make stage1` / `stage2` / `stage2-test` lines naming
it) also runs for real on a tiny COCO export written here, the description's `root` (relative to the
checkout in the README) moved to the export, and test-size overrides appended to the README's own
make arguments (tiny random-weight SAM, 2 training steps, the stage-2 smoke network, 2 iterations).

Not checked: `scripts/setup_env.sh` (it installs; only its bash syntax), the downloads themselves
(`make weights` beyond --dry-run, `make data-voc`'s archives, official SAM checkpoints), so the VOC
and official-weight lines run only as far as their parsed arguments and built configs.

make runs with PY=<this interpreter> and VENV=<a tmp folder>: the dry runs only print what `setup`
would do, and the real runs pass `-o VENV/.setup-stamp` so that `setup` does nothing.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Sequence, Set, Tuple

import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

import wsss.core.cli as wsss_cli
from wsss.core.datasets import load_description, open_described
from wsss.core.evaluation import evaluate_described

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.M | re.S)
HEREDOC = re.compile(r"<<-?\s*['\"]?(\w+)")
CAT_TARGET = re.compile(r"^cat\s*>\s*(\S+)\s*<<")


# -- the README's commands ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MakeLine:
    """One `make ...` command of the README: its arguments after `make`."""

    args: Tuple[str, ...]

    def __str__(self) -> str:
        return shlex.join(("make", *self.args))

    def value(self, name: str) -> str:
        return next((a.split("=", 1)[1] for a in self.args if a.startswith(f"{name}=")), "")


def split_block(block: str) -> Tuple[List[str], List[str]]:
    """(heredoc scripts, other command lines) of a bash block."""
    heredocs, commands = [], []
    lines = iter(block.splitlines())
    for line in lines:
        end = HEREDOC.search(line)
        if end:
            body = list(itertools.takewhile(lambda text: text.strip() != end.group(1), lines))
            heredocs.append("\n".join([line, *body, end.group(1)]) + "\n")
        elif line.strip():
            commands.append(line)
    return heredocs, commands


def commands_of(line: str) -> List[List[str]]:
    """The commands of a line, `&&` apart, comments left out."""
    words = shlex.split(line, comments=True)
    return [list(group) for sep, group in itertools.groupby(words, lambda w: w == "&&") if not sep]


def readme_commands() -> Tuple[List[str], List[List[str]]]:
    heredocs, commands = [], []
    for block in BASH_BLOCK.findall(README.read_text(encoding="utf-8")):
        scripts, lines = split_block(block)
        heredocs += scripts
        commands += [c for line in lines for c in commands_of(line)]
    return heredocs, commands


HEREDOCS, COMMANDS = readme_commands()
MAKE_LINES = list(dict.fromkeys(MakeLine(tuple(c[1:])) for c in COMMANDS if c[0] == "make"))


def test_readme_bash_blocks_hold_make_lines_and_heredocs_only():
    """Anything else in a bash block would go unchecked here."""
    others = [shlex.join(c) for c in COMMANDS if c[0] != "make"]
    assert not others, f"README.md's bash blocks run commands this file has no check for: {others}"
    assert MAKE_LINES and HEREDOCS, "no make line or heredoc found in README.md's ```bash blocks"


def write_heredoc(script: str, folder: Path) -> Tuple[str, Path]:
    """Run a README `cat > PATH <<'END'` block with PATH moved into ``folder``: (PATH, where it went)."""
    first, rest = script.split("\n", 1)
    target = CAT_TARGET.match(first)
    assert target, f"README.md's heredoc writes no file this test can redirect: {first}"
    out = folder / Path(target.group(1)).name
    first = first[:target.start(1)] + shlex.quote(str(out)) + first[target.end(1):]
    subprocess.run(["bash", "-c", f"{first}\n{rest}"], cwd=folder, check=True)
    return target.group(1), out


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Dict[str, Path]:
    """The README's heredoc files, written to tmp: {the README's path: the tmp file}."""
    folder = tmp_path_factory.mktemp("readme_files")
    return dict(write_heredoc(script, folder) for script in HEREDOCS)


def resolved(line: MakeLine, written: Dict[str, Path]) -> List[str]:
    """The line's arguments, a file a heredoc writes named by where the test wrote it."""
    out = []
    for arg in line.args:
        name, eq, value = arg.partition("=")
        out.append(f"{name}={written[value]}" if eq and value in written else arg)
    return out


# -- make ---------------------------------------------------------------------------------------------------


def make_env() -> Dict[str, str]:
    """The environment without the Makefile's own variables (`X ?=` takes them from it) or an outer
    make's flags, so that make sees the README's arguments only."""
    names = set(re.findall(r"^([A-Za-z_]\w*)\s*\?=", (REPO / "Makefile").read_text(), re.M))
    drop = names | {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return env


def run_make(args: Sequence[str], venv: Path, *options: str) -> subprocess.CompletedProcess:
    cmd = ["make", "--no-print-directory", *options, *args, f"PY={sys.executable}", f"VENV={venv}"]
    return subprocess.run(cmd, cwd=REPO, env=make_env(), capture_output=True, text=True, timeout=600)


def dry_run(args: Sequence[str], venv: Path) -> List[List[str]]:
    """The commands `make -n` prints, each as its words."""
    proc = run_make(args, venv, "-n")
    assert proc.returncode == 0, f"make -n {shlex.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return [shlex.split(line) for line in proc.stdout.replace("\\\n", " ").splitlines() if line.strip()]


def real_run(args: Sequence[str], venv: Path) -> None:
    proc = run_make(args, venv, "-o", str(venv / ".setup-stamp"))
    assert proc.returncode == 0, f"make {shlex.join(args)}:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"


def split_assignments(argv: List[str]) -> Tuple[Dict[str, str], List[str]]:
    """``VAR=value ... program args`` -> ({VAR: value}, [program, args...])."""
    n = next(i for i, w in enumerate(argv) if not re.fullmatch(r"[A-Za-z_]\w*=.*", w))
    return dict(w.split("=", 1) for w in argv[:n]), argv[n:]


# -- checks of the commands make would run ------------------------------------------------------------------


@dataclass
class Ctx:
    venv: Path
    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    markers: Set[str]


class ConfigBuilt(Exception):
    """Raised in place of a stage-1 step's work, once its config is built."""


def call_main(module, args: Sequence[str]):
    try:
        return module.main(list(args))
    except SystemExit as exc:
        pytest.fail(f"{module.__name__} refuses its arguments (exit {exc.code}): {shlex.join(args)}")


def parse(parser, args: Sequence[str]):
    try:
        return parser.parse_args(list(args))
    except SystemExit as exc:
        pytest.fail(f"{parser.prog} refuses its arguments (exit {exc.code}): {shlex.join(args)}")


def stage1_step(name: str, args: List[str], ctx: Ctx) -> None:
    """The step's main up to its built config (which reads --config and validates every key)."""
    module = importlib.import_module(name)
    build = module.config_from_args

    def built(*a, **k):
        raise ConfigBuilt(build(*a, **k))

    ctx.monkeypatch.setattr(module, "config_from_args", built)
    ctx.monkeypatch.setattr(module, "run_cli", lambda body: body())
    ctx.monkeypatch.setattr(module, "setup_logging", lambda *a, **k: None)
    with pytest.raises(ConfigBuilt):
        call_main(module, args)


def main_without_work(name: str, args: List[str], ctx: Ctx) -> None:
    """An entry point whose parser lives in its main: main, with run_cli recording the work instead of
    running it."""
    module = importlib.import_module(name)
    bodies: list = []
    for owner in (module, wsss_cli):
        ctx.monkeypatch.setattr(owner, "run_cli", lambda body: bodies.append(body) or 0, raising=False)
        ctx.monkeypatch.setattr(owner, "setup_logging", lambda *a, **k: None, raising=False)
    assert call_main(module, args) == 0 and len(bodies) == 1, f"{name} {shlex.join(args)} stopped before its work"


def stage2_entry(name: str, args: List[str], ctx: Ctx) -> None:
    pytest.importorskip("mmengine", reason="the OpenMMLab stack is not installed (make setup)")
    from mmengine.config import Config

    try:
        parsed = importlib.import_module(name).parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"{name} refuses its arguments (exit {exc.code}): {shlex.join(args)}")
    Config.fromfile(parsed.config).merge_from_dict(parsed.cfg_dict)


def demo(name: str, args: List[str], ctx: Ctx) -> None:
    from wsss.apps.demo.cli import build_parser
    from wsss.apps.demo.sources import check_source_flags

    check_source_flags(parse(build_parser(), args))


def pytest_args(name: str, args: List[str], ctx: Ctx) -> None:
    """pytest parses its arguments (with the repository's config and plugins) by collecting an empty
    folder; a `-m` expression names registered markers only (an unknown one selects everything)."""
    empty = ctx.tmp / "no_tests"
    empty.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "pytest", *args, "--collect-only", "-p", "no:cacheprovider",
           "-c", str(REPO / "setup.cfg"), "--rootdir", str(REPO), str(empty)]
    proc = subprocess.run(cmd, cwd=REPO, env=make_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, proc.stdout + proc.stderr
    expressions = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "-m"]
    names = {w for e in expressions for w in re.findall(r"[A-Za-z_]\w*", e)} - {"and", "or", "not"}
    assert names <= ctx.markers, f"-m names unregistered markers: {sorted(names - ctx.markers)}"


MODULES = {
    "stage1_pseudolabel.pipeline.embed": stage1_step,
    "stage1_pseudolabel.pipeline.train": stage1_step,
    "stage1_pseudolabel.pipeline.generate": stage1_step,
    "wsss.core.evaluation.cli": main_without_work,
    "wsss.core.datasets.voc_build": main_without_work,
    "stage2_segnet.submit": main_without_work,
    "stage2_segnet.train": stage2_entry,
    "stage2_segnet.test": stage2_entry,
    "wsss.apps.demo": demo,
    "pytest": pytest_args,
}


def weights_destination(args: List[str], env: Dict[str, str]) -> str:
    """The file scripts/download_sam_weights.sh ARGS would write, by its --dry-run."""
    proc = subprocess.run(["bash", "scripts/download_sam_weights.sh", "--dry-run", *args], cwd=REPO,
                          env={**make_env(), **env}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    url, arrow, dest = proc.stdout.strip().partition(" -> ")
    assert arrow and url.startswith("https://") and url.rsplit("/", 1)[1] == Path(dest).name, proc.stdout
    assert Path(dest).parent == Path(args[1]), f"{dest} is not in the folder make names ({args[1]})"
    return dest


def check_script(script: str, args: List[str], env: Dict[str, str]) -> None:
    if script == "scripts/download_sam_weights.sh":
        weights_destination(args, env)
    elif script == "scripts/setup_env.sh":  # it installs: its syntax only
        assert subprocess.run(["bash", "-n", script], cwd=REPO).returncode == 0
    else:
        pytest.fail(f"make would run bash {script}, which this file has no check for")


def check_command(argv: List[str], ctx: Ctx) -> None:
    env, words = split_assignments(argv)
    if words[:2] == [sys.executable, "-m"]:
        check = MODULES.get(words[2])
        assert check, f"make would run python -m {words[2]}, which this file has no check for"
        with ctx.monkeypatch.context() as mp:
            mp.chdir(REPO)  # make runs every command from the checkout
            check(words[2], words[3:], Ctx(ctx.venv, ctx.tmp, mp, ctx.markers))
    elif words[0] == "bash":
        check_script(words[1], words[2:], env)
    elif words[0] == "touch":
        assert words[1:] == [str(ctx.venv / ".setup-stamp")], words
    elif words[0] != "make":  # a recursive make: its own commands follow in the output
        pytest.fail(f"make would run `{shlex.join(argv)}`, which this file has no check for")


def check_named_files(args: Sequence[str], tmp: Path) -> None:
    """Config files and dataset descriptions the line names exist (a description also loads)."""
    for arg in args:
        name, _, value = arg.partition("=")
        if value.endswith((".py", ".yaml")):
            assert (REPO / value).is_file(), f"{arg}: no such file"
        if name == "DATASET":
            load_description(REPO / value, overrides={"root": str(tmp)})  # the keys; data is not there


@pytest.mark.parametrize("line", MAKE_LINES, ids=str)
def test_dry_run(line: MakeLine, written, tmp_path, monkeypatch, pytestconfig):
    args = resolved(line, written)
    check_named_files(args, tmp_path)
    commands = dry_run(args, tmp_path / "venv")
    assert commands, f"`{line}` runs nothing"
    markers = {m.split(":")[0].strip() for m in pytestconfig.getini("markers")}
    for argv in commands:
        check_command(argv, Ctx(tmp_path / "venv", tmp_path, monkeypatch, markers))


def checkpoints_read(commands: List[List[str]]) -> Set[str]:
    """The --checkpoint values of the stage-1 steps and the demo among ``commands``."""
    found = set()
    for argv in commands:
        words = split_assignments(argv)[1]
        if words[:2] == [sys.executable, "-m"] and words[2].startswith(("stage1_pseudolabel", "wsss.apps")):
            found |= {words[i + 1] for i, w in enumerate(words[:-1]) if w == "--checkpoint"}
    return found


def test_checkpoints_the_readme_reads_are_the_files_make_weights_writes(written, tmp_path):
    venv, checked = tmp_path / "venv", 0
    for line in MAKE_LINES:
        read = checkpoints_read(dry_run(resolved(line, written), venv))
        if not read:
            continue
        model = [a for a in line.args if a.startswith("SAM_MODEL=")]
        env, words = split_assignments(next(c for c in dry_run(["weights", *model], venv) if "bash" in c))
        assert read == {weights_destination(words[2:], env)}, f"`{line}` reads {read}"
        checked += 1
    assert checked, "no README line reads a SAM checkpoint"


# -- the own-data example, for real ----------------------------------------------------------------------

#: image -> objects (COCO category id, box x0, y0, x1, y1); each box is also the object's polygon
OBJECTS = {
    "street": [(3, (8, 10, 40, 50))],
    "garden": [(7, (50, 20, 90, 66)), (3, (5, 5, 30, 30))],
    "park": [(7, (20, 15, 70, 60))],
    "empty": [],
}
#: not in id order: the label values follow the description's class list, which the test reads
CATEGORIES = {7: "dog", 3: "cat"}
HEIGHT, WIDTH = 72, 96
TINY_STAGE1 = {"STAGE1_CONFIG": "configs/stage1/tiny_random.yaml", "SAM_MODEL": "vit_b", "SAM_CHECKPOINT": "none"}
TINY_STAGE2 = {"CONFIG": "configs/stage2/tiny_deeplabv3plus_r18_smoke.py"}


def draw_image(path: Path, objects, seed: int) -> None:
    noise = np.random.default_rng(seed).integers(90, 140, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    image = Image.fromarray(noise)
    for cat, (x0, y0, x1, y1) in objects:
        ImageDraw.Draw(image).ellipse([x0, y0, x1 - 1, y1 - 1], fill=(220, 40, 40) if cat == 3 else (40, 40, 220))
    image.save(path)


def coco_export(folder: Path) -> dict:
    """The images of :data:`OBJECTS` under ``folder`` and their COCO document (boxes and polygons)."""
    doc = {"images": [], "annotations": [], "categories": [{"id": k, "name": v} for k, v in CATEGORIES.items()]}
    for n, (image_id, objects) in enumerate(OBJECTS.items(), start=1):
        draw_image(folder / f"{image_id}.jpg", objects, seed=n)
        doc["images"].append({"id": n, "file_name": f"{image_id}.jpg", "height": HEIGHT, "width": WIDTH})
        for cat, (x0, y0, x1, y1) in objects:
            doc["annotations"].append({
                "id": len(doc["annotations"]) + 1, "image_id": n, "category_id": cat, "iscrowd": 0,
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]]})
    return doc


def write_own_data(description: dict, root: Path) -> None:
    """What the description names under ``root``: the images folder and each COCO file."""
    files = description["sources"] + [description["ground_truth"]]
    assert {f["format"] for f in files} == {"coco"}, "the README's example is no longer a COCO export"
    (root / description["images"]).mkdir(parents=True)
    doc = json.dumps(coco_export(root / description["images"]))
    for entry in files:
        (root / entry["path"]).write_text(doc)


@pytest.fixture(scope="module")
def own_data(tmp_path_factory) -> SimpleNamespace:
    """The README's description, written by its heredoc with `root` moved to the tiny export (the
    README's root is relative to the checkout, where the test writes nothing)."""
    tmp = tmp_path_factory.mktemp("own_data")
    scripts = [s for s in HEREDOCS if "configs/datasets/" in s.split("\n", 1)[0]]
    assert len(scripts) == 1, "README.md should write one dataset description with a heredoc"
    readme_path, description = write_heredoc(scripts[0], tmp)
    text = description.read_text()
    rooted = re.sub(r"^root:.*$", f"root: {tmp / 'data'}", text, count=1, flags=re.M)
    assert rooted != text, "the README's description names no root"
    description.write_text(rooted)
    write_own_data(yaml.safe_load(rooted), tmp / "data")
    return SimpleNamespace(readme_path=readme_path, description=description, tmp=tmp, venv=tmp / "venv")


def own_line(target: str, own_data) -> List[str]:
    """The README's `make TARGET DATASET=<its description> ...` arguments, the description rooted here."""
    lines = [l for l in MAKE_LINES if l.args[0] == target and l.value("DATASET") == own_data.readme_path]
    assert len(lines) == 1, f"README.md has no single `make {target} DATASET={own_data.readme_path}` line"
    return resolved(lines[0], {own_data.readme_path: own_data.description})


def with_test_size(args: List[str], overrides: Dict[str, str], appended: Dict[str, str]) -> List[str]:
    """``args`` and then ``overrides`` (the later assignment wins), ``appended`` after the line's own value."""
    own = dict(a.split("=", 1) for a in args if "=" in a)
    extra = {k: f"{own.get(k, '')} {v}".strip() for k, v in appended.items()}
    return [*args, *(f"{k}={v}" for k, v in {**overrides, **extra}.items())]


@pytest.fixture(scope="module")
def own_stage1(own_data) -> Path:
    """`make stage1` of the README at test size; its work folder."""
    work = own_data.tmp / "work"
    args = with_test_size(own_line("stage1", own_data), {**TINY_STAGE1, "WORK": str(work)},
                          {"STAGE1_ARGS": "--set train.max_steps=2 --set device=cpu"})
    real_run(args, own_data.venv)
    return work


def label_values(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def expected_confusion(masks: Path, classes: Sequence[str]) -> List[List[int]]:
    """[ground truth, prediction] pixel counts, the ground truth painted from :data:`OBJECTS`' boxes;
    the last column counts predictions outside the classes."""
    n = len(classes)
    confusion = np.zeros((n, n + 1), np.int64)
    for image_id in OBJECTS:
        gt = np.zeros((HEIGHT, WIDTH), np.int64)
        for cat, (x0, y0, x1, y1) in OBJECTS[image_id]:
            gt[y0:y1, x0:x1] = classes.index(CATEGORIES[cat])
        pred = label_values(masks / f"{image_id}.png").astype(np.int64)
        np.add.at(confusion, (gt, np.where(pred < n, pred, n)), 1)
    return confusion.tolist()


def test_own_data_stage1_for_real(own_data, own_stage1):
    dataset = open_described(own_data.description)
    assert sorted(dataset.classes) == sorted(["background", *CATEGORIES.values()]) and dataset.classes[0] == "background"
    masks = own_stage1 / "pseudo_masks"
    assert sorted(p.stem for p in masks.glob("*.png")) == sorted(OBJECTS)
    for image_id, objects in OBJECTS.items():
        values = label_values(masks / f"{image_id}.png")
        assert values.shape == (HEIGHT, WIDTH) and values.max() < len(dataset.classes), image_id
        assert objects or not values.any(), f"{image_id} has no weak label: data.no_label_policy is background"
    report = json.loads((own_stage1 / "pseudo_miou.json").read_text())
    assert report["mIoU"] == pytest.approx(evaluate_described(dataset, pred_dir=masks).miou, abs=1e-3)
    assert report["confusion"] == expected_confusion(masks, list(dataset.classes))


@pytest.mark.slow
@pytest.mark.stage2
def test_own_data_stage2_for_real(own_data, own_stage1):
    pytest.importorskip("mmseg", reason="the OpenMMLab stack is not installed (make setup)")
    work = own_data.tmp / "stage2"
    common = {**TINY_STAGE2, "WORK": str(own_stage1), "STAGE2_WORK": str(work)}
    real_run(with_test_size(own_line("stage2", own_data), common,
                            {"STAGE2_ARGS": "--cfg-options train_cfg.max_iters=2"}), own_data.venv)
    assert (work / "iter_2.pth").is_file()
    real_run(with_test_size(own_line("stage2-test", own_data), common, {}), own_data.venv)
    preds = work / "preds_val"
    assert sorted(p.stem for p in preds.glob("*.png")) == sorted(OBJECTS)
    record = json.loads((work / "test_val_metrics.json").read_text())
    ours = evaluate_described(open_described(own_data.description), pred_dir=preds)
    assert record["per_class_iou"] == pytest.approx(ours.per_class_iou, abs=0.01)
