"""Each constraint type checks its own options where it is registered (``check_options`` of
``register_constraint``): a config refuses a bad value with the type's message when it is read, for
the built-in types and a user's type alike, and the config itself names no type."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from logic.constraints import ConstraintConfig, constraint_types, get_constraint_type, register_constraint, registry

CONFIG_SOURCE = Path(__file__).resolve().parents[2] / "logic" / "constraints" / "config.py"


@pytest.mark.parametrize("name, options, message", [
    ("neighbourhood", {"connectivity": 6}, "neighbourhood connectivity must be 4 or 8, got 6"),
    ("border_precision", {"connectivity": 5}, "border_precision connectivity must be 4 or 8, got 5"),
    ("box_fill", {"fraction": 0.0}, "need 0 < box_fill.fraction <= 1, got 0.0"),
    ("box_fill", {"fraction": 1.5}, "need 0 < box_fill.fraction <= 1, got 1.5"),
    ("zero_shot_anchor", {"threshold": 0}, "need 0 < zero_shot_anchor.threshold <= 1, got 0"),
    ("colour_affinity", {"threshold": 2.0}, "need 0 < colour_affinity.threshold <= 1, got 2.0"),
    ("colour_affinity", {"theta": 0.0}, "need colour_affinity theta > 0 and dilation >= 1"),
    ("colour_affinity", {"dilation": 0}, "need colour_affinity theta > 0 and dilation >= 1"),
])
def test_each_builtin_type_refuses_a_bad_option_with_its_name(name, options, message):
    assert get_constraint_type(name).check_options is not None
    with pytest.raises(ValueError, match=re.escape(message)):
        ConstraintConfig(options={name: options})
    with pytest.raises(ValueError, match=re.escape(message)):
        ConstraintConfig.from_dict({name: {"weight": 1.0, **options}})


def test_the_builtin_defaults_and_good_values_pass_their_checks():
    cfg = ConstraintConfig(options={"neighbourhood": {"connectivity": 4}, "box_fill": {"fraction": 1.0},
                                    "colour_affinity": {"theta": 0.5, "threshold": 1.0, "dilation": 1}})
    assert cfg.options["neighbourhood"] == {"connectivity": 4} and cfg.options["box_fill"] == {"fraction": 1.0}
    for name, kind in constraint_types().items():
        if kind.check_options is not None:
            kind.check_options(dict(kind.options))


def test_a_user_type_checks_its_options_when_the_config_is_read(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # the registration ends with the test

    def check_margin(options):
        if options["margin"] < 0:
            raise ValueError(f"need my_margin.margin >= 0, got {options['margin']}")

    @register_constraint("my_margin", options={"margin": 2}, check_options=check_margin)
    def build_my_margin(inputs, *, margin):
        raise AssertionError("a config check builds nothing")

    with pytest.raises(ValueError, match=re.escape("need my_margin.margin >= 0, got -1")):
        ConstraintConfig.from_dict({"my_margin": {"weight": 1.0, "margin": -1}})
    with pytest.raises(ValueError, match=re.escape("need my_margin.margin >= 0, got -3")):
        ConstraintConfig(options={"my_margin": {"margin": -3}})
    cfg = ConstraintConfig.from_dict({"my_margin": {"weight": 1.0, "margin": 3}})
    assert cfg.weights["my_margin"] == 1.0 and cfg.options["my_margin"] == {"margin": 3}

    @register_constraint("my_unchecked", options={"margin": 2})
    def build_my_unchecked(inputs, *, margin):
        raise AssertionError("a config check builds nothing")

    assert ConstraintConfig(options={"my_unchecked": {"margin": -3}}).options["my_unchecked"] == {"margin": -3}


def test_the_config_names_no_constraint_type():
    """The checks live with their types: no string literal of the config module is a registered name."""
    names = set(constraint_types())
    literals = [node.value for node in ast.walk(ast.parse(CONFIG_SOURCE.read_text(encoding="utf-8")))
                if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    assert not names & set(literals), names & set(literals)
