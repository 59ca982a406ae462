"""The architecture as a contract: layers, no import-time side effects, one CLI dialect, make help.

Layers (README, "Layout"), lowest first; a package may import its own layer and those below:
  ground:        logic (imports nothing of ours), wsss.core (may import logic)
  stages:        stage1_pseudolabel, stage2_segnet (ground only; never each other)
  applications:  wsss.apps (anything)
"""

from __future__ import annotations

import ast
import configparser
import importlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parents[1]
OURS = ("logic", "wsss", "stage1_pseudolabel", "stage2_segnet")

#: package prefix -> prefixes it may import (its own prefix included)
ALLOWED: Dict[str, Set[str]] = {
    "logic": {"logic"},
    "wsss.core": {"logic", "wsss.core"},
    "stage1_pseudolabel": {"logic", "wsss.core", "stage1_pseudolabel"},
    "stage2_segnet": {"logic", "wsss.core", "stage2_segnet"},
    "wsss.apps": {"logic", "wsss", "stage1_pseudolabel", "stage2_segnet"},
    "wsss": {"wsss"},  # the bare package's __init__
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path, root: Path) -> List[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved), ours or not."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names.append(prefix)
            names += [f"{prefix}.{a.name}" for a in node.names]  # `from pkg import module`
    return names


def layer_of(module: str) -> str:
    return max((p for p in ALLOWED if module == p or module.startswith(p + ".")), key=len)


def violations(files: Iterable[Path], root: Path) -> List[str]:
    """``"<file>: <module> imports <name>"`` for each import that crosses the layers upwards or sideways."""
    found = []
    for path in files:
        mod = module_name(path, root)
        allowed = ALLOWED[layer_of(mod)]
        for name in imported_modules(path, root):
            if name.split(".")[0] not in OURS:
                continue
            if not any(name == a or name.startswith(a + ".") for a in allowed):
                found.append(f"{path.relative_to(root)}: {mod} imports {name}")
    return sorted(set(found))


def package_files(root: Path) -> List[Path]:
    return sorted(p for pkg in OURS for p in (root / pkg).rglob("*.py"))


def test_no_import_crosses_the_layers():
    assert violations(package_files(REPO), REPO) == []


def write_tree(root: Path, files: Dict[str, str]) -> None:
    """Write ``{relative path: source}`` under ``root`` (a copy of the tree for a check's self-test)."""
    for rel, code in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(code)


def test_the_contract_fails_on_wrong_imports(tmp_path):
    """The check is not vacuous: each kind of wrong import in a copy of the tree is reported."""
    bad = {
        "logic/bad.py": "from wsss.core.masks import write_mask\n",
        "wsss/core/bad.py": "from stage1_pseudolabel.sam import registry\n",
        "stage1_pseudolabel/bad.py": "import stage2_segnet.train\n",
        "stage2_segnet/bad.py": "from stage1_pseudolabel.pipeline.config import Stage1Config\n",
        "stage2_segnet/bad_relative.py": "from ..wsss.apps import demo\n",
    }
    write_tree(tmp_path, bad)
    for pkg in OURS:
        (tmp_path / pkg).mkdir(exist_ok=True)
    found = violations(package_files(tmp_path), tmp_path)
    for rel in ("logic/bad.py", "wsss/core/bad.py", "stage1_pseudolabel/bad.py", "stage2_segnet/bad.py"):
        assert any(line.startswith(rel + ":") for line in found), (rel, found)
    # and the right ones pass
    (tmp_path / "stage1_pseudolabel/good.py").write_text("from wsss.core.masks import write_mask\nimport logic\n")
    (tmp_path / "wsss/apps").mkdir(parents=True, exist_ok=True)
    (tmp_path / "wsss/apps/good.py").write_text("import stage2_segnet.train\nfrom stage1_pseudolabel import sam\n")
    found = violations(package_files(tmp_path), tmp_path)
    assert not any("good.py" in line for line in found)


def _child(name: str, package: str) -> Optional[str]:
    """The direct child of ``package`` that ``name`` is or lies in; None for a name outside it (or itself)."""
    if not name.startswith(package + "."):
        return None
    return package + "." + name[len(package) + 1:].split(".")[0]


def _edges(files: Iterable[Path], root: Path) -> Dict[str, Dict[Tuple[str, str], str]]:
    """``{package: {(child, child): witness}}``: which children of each package import which others.

    A package's children are its modules and subpackages (a subpackage counts as one node). Between
    the top-level packages the layers (:data:`ALLOWED`) allow no circle. A package's own ``__init__``
    is its facade, no child: its re-exports and a child's import of the facade make no edge at that
    package's level. Every import counts, at module level or inside a function.
    """
    modules = {module_name(p, root): p for p in files}
    packages = {".".join(m.split(".")[:i]) for m in modules for i in range(1, m.count(".") + 1)}
    edges: Dict[str, Dict[Tuple[str, str], str]] = {}
    for package in sorted(packages):
        nodes = {_child(m, package) for m in modules} - {None}
        level = edges.setdefault(package, {})
        for mod, path in sorted(modules.items()):
            source = _child(mod, package)
            if source is None or mod == package:
                continue
            for name in imported_modules(path, root):
                target = _child(name, package)
                if target in nodes and target != source:
                    level.setdefault((source, target), f"{path.relative_to(root)} imports {name}")
    return edges


def _circles(pairs: Iterable[Tuple[str, str]]) -> List[Set[str]]:
    """The nodes that reach each other, one set per circle (the graph's strongly connected components)."""
    succ: Dict[str, Set[str]] = {}
    for a, b in pairs:
        succ.setdefault(a, set()).add(b)
    reach: Dict[str, Set[str]] = {}
    for start in succ:
        seen, todo = set(), list(succ[start])
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo += succ.get(node, ())
        reach[start] = seen
    groups = {frozenset(b for b in reach[a] if a in reach.get(b, ())) for a in reach if a in reach[a]}
    return [set(g) for g in sorted(groups, key=sorted)]


def import_circles(files: Iterable[Path], root: Path) -> List[str]:
    """``"a <-> b: <file> imports <name>; ..."`` for each circle of imports among a package's children."""
    found = []
    for level in _edges(files, root).values():
        for group in _circles(level):
            witnesses = [w for (a, b), w in sorted(level.items()) if a in group and b in group]
            found.append(f"{' <-> '.join(sorted(group))}: {'; '.join(witnesses)}")
    return sorted(found)


def test_no_import_circle():
    found = import_circles(package_files(REPO), REPO)
    assert not found, "import circles:\n" + "\n".join(found)


def test_the_circle_check_finds_hidden_circles(tmp_path):
    """A circle closed by an import inside a function is reported, between subpackages and between the
    modules of a package; a facade re-exporting its submodules, and one-way imports, are not."""
    tree = {
        "wsss/core/a/__init__.py": "from wsss.core.a.x import f\n",
        "wsss/core/a/x.py": "from wsss.core.b import g\ndef f():\n    pass\n",
        "wsss/core/b/__init__.py": "def g():\n    from wsss.core.a import f\n",
        "stage1_pseudolabel/sam/__init__.py": "from .checkpoint import load\nfrom .registry import build\n",
        "stage1_pseudolabel/sam/checkpoint.py": "from stage1_pseudolabel.sam.registry import VARIANTS\n",
        "stage1_pseudolabel/sam/registry.py": "VARIANTS = {}\ndef build():\n    from .checkpoint import load\n",
        "logic/__init__.py": "",
        "logic/constraints/__init__.py": "from logic.constraints.base import C\nfrom logic.constraints.config import K\n",
        "logic/constraints/base.py": "C = 1\n",
        "logic/constraints/config.py": "from logic.constraints import C\nfrom logic.formula import parse\n",
        "logic/formula/__init__.py": "from logic.formula.parser import parse\n",
        "logic/formula/parser.py": "def parse():\n    pass\n",
    }
    write_tree(tmp_path, tree)
    found = import_circles(package_files(tmp_path), tmp_path)
    assert found == [
        "stage1_pseudolabel.sam.checkpoint <-> stage1_pseudolabel.sam.registry: "
        "stage1_pseudolabel/sam/checkpoint.py imports stage1_pseudolabel.sam.registry; "
        "stage1_pseudolabel/sam/registry.py imports stage1_pseudolabel.sam.checkpoint",
        "wsss.core.a <-> wsss.core.b: wsss/core/a/x.py imports wsss.core.b; "
        "wsss/core/b/__init__.py imports wsss.core.a",
    ], found
    # logic.formula importing logic.constraints back, inside a function, closes a circle
    (tmp_path / "logic/formula/parser.py").write_text("def parse():\n    from logic.constraints import C\n")
    found = import_circles(package_files(tmp_path), tmp_path)
    assert [line.split(":")[0] for line in found] == [
        "logic.constraints <-> logic.formula",
        "stage1_pseudolabel.sam.checkpoint <-> stage1_pseudolabel.sam.registry",
        "wsss.core.a <-> wsss.core.b",
    ], found


def _all_modules(package: str) -> List[str]:
    root = REPO / package.replace(".", "/")
    return sorted(module_name(p, REPO) for p in root.rglob("*.py") if "plugin" not in p.name)


def test_importing_the_stages_has_no_side_effect():
    """No torchvision stand-in, no segment_anything and no mmengine checkpoint patch at import time."""
    mods = _all_modules("stage1_pseudolabel") + _all_modules("wsss.core")
    code = f"""
import importlib, sys
for m in {mods!r}:
    importlib.import_module(m)
from stage1_pseudolabel.sam.torchvision_compat import using_stand_in
print("stand-in" if using_stand_in() else "clean", "segment_anything" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["clean", "False"], out.stdout


@pytest.mark.stage2
def test_importing_stage2_does_not_patch_mmengine():
    code = """
import importlib, sys
from mmengine.runner import CheckpointLoader
before = CheckpointLoader._schemes[""]
for m in ["stage2_segnet", "stage2_segnet.train", "stage2_segnet.test", "stage2_segnet.register", "stage2_segnet.checks"]:
    importlib.import_module(m)
print(CheckpointLoader._schemes[""] is before)
from stage2_segnet.register import register_all
register_all()
print(CheckpointLoader._schemes[""] is before)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"], out.stdout


def console_scripts() -> Dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    lines = [ln.strip() for ln in cfg["options.entry_points"]["console_scripts"].splitlines() if "=" in ln]
    return {name.strip(): target.strip() for name, target in (ln.split("=", 1) for ln in lines)}


@pytest.mark.parametrize("script", sorted(console_scripts()))
def test_cli_prog_names_are_the_console_script_names(script, capsys):
    module, func = console_scripts()[script].split(":")
    if module.startswith("stage2_segnet"):
        pytest.importorskip("mmseg")
    main = getattr(importlib.import_module(module), func)
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: {script} ")


def test_make_help_lists_every_target():
    text = (REPO / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*?)(?:\n\n)", text, re.S | re.M).group(1).replace("\\", " ").split()
    out = subprocess.run([sys.executable, "scripts/make_help.py", "Makefile"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    listed = {ln.split()[0] for ln in out.stdout.splitlines() if ln.startswith("  ") and not ln.strip().startswith("reads:")}
    assert set(phony) <= listed, set(phony) - listed
    # the variables a target reads are derived from its recipe, through STAGE1_COMMON
    embed = out.stdout.split("  stage1-embed ")[1].split("\n  stage1-")[0]
    assert "EMBED_ARGS" in embed and "STAGE1_CONFIG" in embed and "TRAIN_ARGS" not in embed


def test_the_pipeline_never_names_a_constraint_type():
    """Constraint types are found through the registry: no string literal in the stages or the apps
    equals a registered type's name (a new type touches one module)."""
    import ast

    from logic.constraints import constraint_types

    # "background", "scribbles" and "box_fill" also name the background class, the scribble folder and
    # the box-fill baseline: left out of the check.
    names = set(constraint_types()) - {"background", "scribbles", "box_fill"}
    offenders = []
    for folder in ("stage1_pseudolabel", "stage2_segnet", "wsss/apps"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert not offenders, "\n".join(offenders)


#: the longest function a reader meets in the packages (lines, decorators and docstring included)
MAX_FUNCTION_LINES = 120


def long_functions(files: Iterable[Path], root: Path, limit: int = MAX_FUNCTION_LINES) -> List[str]:
    """``"<file>:<line> <name> (<n> lines)"`` for each function or method longer than ``limit`` lines."""
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                n = node.end_lineno - first + 1
                if n > limit:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({n} lines)")
    return found


def test_every_function_fits_on_a_screen(tmp_path):
    assert long_functions(package_files(REPO), REPO) == []
    # the check is not vacuous: a long function in a copy of the tree is reported, a short one is not
    (tmp_path / "logic").mkdir()
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "logic" / "long.py").write_text(f"def short():\n    return 1\n\n\ndef long():\n{body}")
    assert long_functions(package_files_of(tmp_path), tmp_path) == [
        f"logic/long.py:5 long ({MAX_FUNCTION_LINES + 1} lines)"]


def package_files_of(root: Path) -> List[Path]:
    return sorted(p for pkg in OURS if (root / pkg).is_dir() for p in (root / pkg).rglob("*.py"))
