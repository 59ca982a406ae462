"""The documentation pages that can drift from the code, held to it.

- docs/commands.md names every make target (`make help`), every make variable and every console script;
- docs/config.md names every stage-1 config key, and its table is what scripts/config_reference.py
  prints (regenerate: python scripts/config_reference.py --write docs/config.md);
- every `make X` and console-script command in README.md and docs/*.md names one that exists, and the
  README shows the commands .ci/run runs;
- every relative link (and its #anchor) in README.md and docs/*.md resolves, and every file of the
  repository a page names in code (`stage1_pseudolabel/pipeline/config.py`) exists.
"""

from __future__ import annotations

import configparser
import dataclasses
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
SPAN = re.compile(r"(?<!`)`([^`]+)`(?!`)")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def make_targets() -> List[str]:
    """The targets `python scripts/make_help.py Makefile` lists."""
    out = subprocess.run([sys.executable, "scripts/make_help.py", "Makefile"], cwd=REPO, capture_output=True,
                         text=True, check=False).stdout
    targets = [m.group(1) for m in re.finditer(r"^  (\S+)  +(?!reads:)\S", out, re.M)]
    assert len(targets) > 10, out
    return targets


def make_variables() -> List[str]:
    """The variables a user may set (`NAME ?= default` in the Makefile)."""
    return re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)\s*\?=", read(REPO / "Makefile"), re.M)


def console_scripts() -> Dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    lines = cfg["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict((part.strip() for part in line.split("=", 1)) for line in lines if "=" in line)


def without_fences(text: str) -> str:
    return FENCE.sub("", text)


def code_lines(text: str) -> Iterator[str]:
    """Command lines of a page: each line of its fenced blocks (heredoc bodies and comments left out)
    and each inline code span."""
    for block in FENCE.findall(text):
        heredoc = None
        for line in block.splitlines():
            if heredoc is not None:
                if line.strip() == heredoc:
                    heredoc = None
                continue
            m = re.search(r"<<-?\s*'?\"?(\w+)", line)
            if m:
                heredoc = m.group(1)
            yield re.sub(r"(^|\s)#.*$", "", line)
    for span in SPAN.findall(without_fences(text)):
        yield span.replace("\n", " ")


def make_commands(line: str) -> Iterator[List[str]]:
    """The targets of each `make ...` command on a line."""
    for m in re.finditer(r"(?:^|[\s;&|(])make((?:\s+[^\s;&|)]+)*)", line):
        targets = [tok for tok in m.group(1).split() if re.fullmatch(r"[a-z][a-z0-9.-]*", tok)]
        yield targets


# -- (a) commands.md -----------------------------------------------------------------------------------


def test_commands_page_names_every_make_target_variable_and_console_script():
    page = read(DOCS / "commands.md")
    missing = [t for t in make_targets() if f"`make {t}`" not in page]
    assert not missing, f"docs/commands.md lacks these make targets (as `make X`): {missing}"
    missing = [v for v in make_variables() if f"`{v}`" not in page]
    assert not missing, f"docs/commands.md lacks these make variables: {missing}"
    missing = [s for s in console_scripts() if f"`{s}`" not in page]
    assert not missing, f"docs/commands.md lacks these console scripts: {missing}"


# -- (b) config.md --------------------------------------------------------------------------------------


def config_reference():
    spec = importlib.util.spec_from_file_location("config_reference", REPO / "scripts" / "config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def config_keys(cls, prefix: str = "") -> List[str]:
    """Every key of a config dataclass; a field that is itself a dataclass is a section (`a.b`)."""
    import typing

    hints = typing.get_type_hints(cls)
    keys = []
    for f in dataclasses.fields(cls):
        hint = hints.get(f.name)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            keys += [prefix + f.name] + config_keys(hint, prefix + f.name + ".")
        else:
            keys.append(prefix + f.name)
    return keys


def test_config_page_names_every_stage1_key():
    from stage1_pseudolabel.pipeline.config import Stage1Config

    page = read(DOCS / "config.md")
    missing = [k for k in config_keys(Stage1Config) if f"`{k}`" not in page]
    assert not missing, f"docs/config.md lacks these stage-1 config keys: {missing}"


def test_config_page_table_is_the_generated_one():
    ref = config_reference()
    page = read(DOCS / "config.md")
    block = ref.generated_block(page)
    assert block, "docs/config.md has no generated block (the marker lines of scripts/config_reference.py)"
    assert block == ref.render(), (
        "docs/config.md's stage-1 table differs from the config dataclass; regenerate it with\n"
        "    .venv/bin/python scripts/config_reference.py --write docs/config.md")


def test_config_reference_fallbacks_are_for_uncommented_fields_only():
    """A key the script describes itself must be a field that config.py leaves without a comment."""
    from stage1_pseudolabel.pipeline.config import Stage1Config

    ref = config_reference()
    keys = set(config_keys(Stage1Config))
    stale = [k for k in ref.FALLBACK if k not in keys]
    assert not stale, f"scripts/config_reference.py describes keys that are no fields: {stale}"
    commented = {key: text for key, text in _own_comments(ref, Stage1Config).items() if text}
    doubled = [k for k in ref.FALLBACK if k in commented]
    assert not doubled, f"config.py comments these keys now: drop them from FALLBACK in scripts/config_reference.py: {doubled}"


def _own_comments(ref, cls, prefix: str = "") -> Dict[str, str]:
    import typing

    meaning, _ = ref.field_comments(cls)
    out = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints.get(f.name)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            out.update(_own_comments(ref, hint, prefix + f.name + "."))
        else:
            out[prefix + f.name] = meaning.get(f.name, "")
    return out


def test_config_page_names_every_dataset_description_key():
    from wsss.core.datasets import description

    keys = getattr(description, "_KEYS", None)
    if keys is None:
        pytest.skip("wsss.core.datasets.description has no _KEYS list to check against")
    page = read(DOCS / "config.md")
    missing = [k for k in keys if f"`{k}`" not in page]
    assert not missing, f"docs/config.md lacks these dataset description keys: {missing}"


# -- (c) commands in the pages, links ----------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_commands_in_the_pages_exist(page: Path):
    targets = set(make_targets())
    scripts = set(console_scripts())
    bad: Set[str] = set()
    for line in code_lines(read(page)):
        for named in make_commands(line):
            bad |= {f"make {t}" for t in named if t not in targets}
        bad |= {s for s in re.findall(r"(?<![\w/.-])(wsss-[a-z0-9-]+)", line) if s not in scripts}
    assert not bad, f"{page.name} shows commands that do not exist: {sorted(bad)}"


def test_readme_shows_the_commands_ci_runs():
    """The README's setup and test commands are the ones .ci/run runs."""
    ci = [line.strip() for line in read(REPO / ".ci" / "run").splitlines() if line.strip().startswith("make ")]
    assert ci, ".ci/run runs no make command"
    blocks = "\n".join(FENCE.findall(read(REPO / "README.md")))
    missing = [cmd for cmd in ci if not re.search(rf"(^|&&\s*){re.escape(cmd)}(\s|$)", blocks, re.M)]
    assert not missing, f"README.md's code blocks do not show what .ci/run runs: {missing}"


def rel(path: Path) -> str:
    return str(path.relative_to(REPO)) if REPO in path.parents else str(path)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[`*_]", lambda m: "_" if m.group(0) == "_" else "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> Set[str]:
    text = without_fences(read(path))
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path):
    bad = []
    for target in LINK.findall(without_fences(read(page))):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, fragment = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            bad.append(f"{target} (no such file)")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            bad.append(f"{target} (no heading #{fragment} in {rel(dest)})")
    assert not bad, f"{rel(page)}: broken links: {bad}"


REPO_FILE = re.compile(r"(?<![\w./<-])((?:logic|wsss|stage1_pseudolabel|stage2_segnet|configs|scripts|benchmarks|tests|"
                       r"requirements|docs|data)/[\w./-]*\.(?:py|yaml|md|sh|sbatch|txt|cfg))(?![\w*{])")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_repository_files_named_in_the_pages_exist(page: Path):
    """A page that names a module or config file the code no longer has has drifted."""
    named = {m for line in code_lines(read(page)) for m in REPO_FILE.findall(line)}
    # files the pages' own examples write (`cat > configs/datasets/my_coco.yaml <<'YAML'`)
    written = {m for doc in PAGES for block in FENCE.findall(read(doc)) for m in re.findall(r">\s*(\S+)", block)}
    missing = sorted(p for p in named - written if not (REPO / p).exists())
    assert not missing, f"{rel(page)} names files that do not exist: {missing}"


def test_formulas_in_the_docs_parse():
    """Every `formula: "..."` a user may copy from docs/*.md parses (README.md's and logic/README.md's
    are also compiled and evaluated by tests/logic/test_formula.py)."""
    from logic.formula import parse_formula

    texts = [t for page in DOCS.glob("*.md") for t in re.findall(r'formula: "([^"]+)"', read(page))]
    for text in texts:
        parse_formula(text)
