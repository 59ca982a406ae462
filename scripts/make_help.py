"""Print `make help` from the Makefile itself: every `target: ... ## text`, with the variables it reads.

A variable is listed for a target when its recipe (or a variable the recipe uses, recursively, e.g.
STAGE1_COMMON) references it and the Makefile lets the user set it (`NAME ?= default`). Targets
without recipes list what their prerequisites read. Runs with any python3 (no venv needed).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Dict, List, Set

REF = re.compile(r"\$[({]([A-Za-z_][A-Za-z0-9_]*)[)}]")
ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(\?=|:=|\+=|=)\s*(.*)$")
RULE = re.compile(r"^([A-Za-z0-9_.-]+)\s*:(?!=)\s*([^#]*?)\s*(?:##\s*(.*))?$")


def parse(text: str):
    lines = text.replace("\\\n", " ").splitlines()
    definitions: Dict[str, str] = {}
    settable: Set[str] = set()
    rules: Dict[str, dict] = {}
    order: List[str] = []
    current = None
    for line in lines:
        if line.startswith("\t") and current is not None:
            rules[current]["recipe"] += " " + line
            continue
        current = None
        m = ASSIGN.match(line)
        if m:
            name, op, value = m.groups()
            definitions[name] = definitions.get(name, "") + " " + value
            if op == "?=":
                settable.add(name)
            continue
        m = RULE.match(line)
        if m and not line.startswith((".", "$")):
            name, deps, text = m.groups()
            rules[name] = {"deps": deps.split(), "help": text, "recipe": ""}
            order.append(name)
            current = name
    return definitions, settable, rules, order


def variables_of(text: str, definitions: Dict[str, str], seen: Set[str]) -> Set[str]:
    found = set()
    for name in REF.findall(text):
        if name in seen:
            continue
        seen.add(name)
        found.add(name)
        found |= variables_of(definitions.get(name, ""), definitions, seen)
    return found


def main(path: str = "Makefile") -> int:
    definitions, settable, rules, order = parse(Path(path).read_text())
    documented = [t for t in order if rules[t]["help"]]
    undocumented = [t for t in order if not rules[t]["help"] and "/" not in t and not t.startswith("$")]
    width = max(len(t) for t in documented)
    print("Targets (variables each reads; set them on the command line: make stage1 DATA=... SAM_MODEL=vit_b):\n")
    for target in documented:
        recipe = rules[target]["recipe"]
        if not recipe.strip():  # an aggregate: what its prerequisites read
            recipe = " ".join(rules[d]["recipe"] for d in rules[target]["deps"] if d in rules)
        names = sorted(n for n in variables_of(recipe, definitions, set()) if n in settable and n != "VENV")
        print(f"  {target:<{width}}  {rules[target]['help']}")
        if names:
            print(f"  {'':<{width}}    reads: {' '.join(names)}")
    if undocumented:
        print(f"\nundocumented targets (add '## text'): {' '.join(undocumented)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
