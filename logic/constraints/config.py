"""Which constraints make up the loss: weights and options by registered name, and formulas.

In a config (the ``loss:`` section of a stage-1 YAML) every key but ``normalisation`` and ``eps`` names
a constraint: a registered type (:mod:`logic.constraints.registry`) or a formula of the user's::

    loss:
      normalisation: mean
      background: 4.0                             # a weight
      box_fill: {weight: 2.0, fraction: 0.8}      # a weight and the type's options
      cup_in_disc:                                # a formula (logic/README.md, "Formulas")
        weight: 1.0
        formula: "forall p in pixels: cup(p) -> forall q in N8(p): not background(q)"

Types not named keep their registered default weight (the method's five: 1, the others: 0). Unknown
names and options are refused with the known ones listed; each type checks its options' values
(``check_options`` of :func:`~logic.constraints.registry.register_constraint`).
"""

from __future__ import annotations

from typing import Any, Dict, FrozenSet, Mapping, Optional, Sequence, Tuple

from logic.constraints.registry import ConstraintType, constraint_types, get_constraint_type
from logic.formula import Formula, parse_formula
from logic.ops import DEFAULT_EPS

NORMALISATIONS = ("sum", "mean")
GLOBAL_OPTIONS = ("normalisation", "eps")


class ConstraintConfig:
    """Weights and options of the constraint loss. A weight of 0 leaves the constraint out (not built).

    Args:
        weights: ``{name: weight}`` for registered types and formulas; registered types not given keep
            their default weight.
        options: ``{type name: {option: value}}``; options not given keep the type's defaults.
        formulas: ``{name: formula text}`` constraints written in the formula language
            (:mod:`logic.formula`), parsed here (a syntax error is raised at once).
        class_names: the dataset's classes (background first): formulas' class atoms are checked
            against them (an unknown name is an error listing them); None: not checked.
        normalisation: ``"sum"``: plain sum of log-truths over all groundings (the thesis; types with
            many groundings, e.g. neighbourhood over ``K x H x W``, dominate); ``"mean"``: each type's
            log-truth divided by its number of groundings, so each contributes on the scale of one.
        eps: atoms are clipped to probabilities ``[eps, 1 - eps]`` (:func:`logic.ops.clamp_truth`).
    """

    def __init__(
        self,
        weights: Optional[Mapping[str, float]] = None,
        options: Optional[Mapping[str, Mapping[str, Any]]] = None,
        *,
        formulas: Optional[Mapping[str, str]] = None,
        class_names: Optional[Sequence[str]] = None,
        normalisation: str = "mean",
        eps: float = DEFAULT_EPS,
    ) -> None:
        if normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
        if not 0 < eps < 0.5:
            raise ValueError(f"need 0 < eps < 0.5, got eps={eps}")
        self.normalisation = normalisation
        self.eps = float(eps)
        self.class_names = None if class_names is None else tuple(class_names)
        types = constraint_types()
        self.formulas: Dict[str, Formula] = self._parse_formulas(formulas or {}, types)
        self.weights: Dict[str, float] = self._weights(dict(weights or {}), types)
        self.options: Dict[str, Dict[str, Any]] = self._options(dict(options or {}), types)

    def _parse_formulas(self, formulas: Mapping[str, str], types: Mapping[str, ConstraintType]) -> Dict[str, Formula]:
        out: Dict[str, Formula] = {}
        for name, text in formulas.items():
            if name in types:
                raise ValueError(f"formula {name!r} has the name of a registered constraint type; choose another")
            out[name] = parse_formula(text, name=name, class_names=self.class_names)
        return out

    def _weights(self, given: Mapping[str, float], types: Mapping[str, ConstraintType]) -> Dict[str, float]:
        """Registered defaults, 1 for each formula, then the given weights (names and values checked)."""
        known = list(types) + list(self.formulas)
        unknown = set(given) - set(known)
        if unknown:
            raise ValueError(f"unknown constraints {sorted(unknown)}; known: {known}")
        weights = {name: t.default_weight for name, t in types.items()}
        weights.update({name: 1.0 for name in self.formulas})
        for name, w in given.items():
            if not isinstance(w, (int, float)) or isinstance(w, bool) or w < 0:
                raise ValueError(f"weight of constraint {name!r} must be a number >= 0, got {w!r}")
            weights[name] = float(w)
        return weights

    @staticmethod
    def _options(given: Mapping[str, Mapping[str, Any]], types: Mapping[str, ConstraintType]) -> Dict[str, Dict[str, Any]]:
        """Every type's options: its defaults updated with the given ones, checked by the type's own
        ``check_options`` (:func:`~logic.constraints.registry.register_constraint`)."""
        for name, values in given.items():
            if name not in types:
                raise ValueError(f"options for unknown constraint type {name!r}; registered: {list(types)}")
            bad = set(values) - set(types[name].options)
            if bad:
                raise ValueError(f"unknown options {sorted(bad)} of constraint {name!r}; its options: "
                                 f"{sorted(types[name].options) or 'none'}")
        options = {name: {**t.options, **dict(given.get(name, {}))} for name, t in types.items()}
        for name, t in types.items():
            if t.check_options is not None:
                t.check_options(options[name])
        return options

    # -- queries ------------------------------------------------------------------------------------
    @property
    def active(self) -> Tuple[str, ...]:
        """Names with a non-zero weight, registered types first (registration order), then formulas."""
        return tuple(name for name, w in self.weights.items() if w > 0)

    def requires(self, name: str) -> FrozenSet[str]:
        """Inputs (:data:`~logic.grounding.inputs.INPUTS`) constraint ``name`` needs."""
        if name in self.formulas:
            return self.formulas[name].requires
        return get_constraint_type(name).requires

    @property
    def needed_inputs(self) -> FrozenSet[str]:
        """Inputs some active constraint needs (what a pipeline must compute, e.g. superpixels)."""
        out: set = set()
        for name in self.active:
            out |= self.requires(name)
        return frozenset(out)

    def type_of(self, name: str) -> Optional[ConstraintType]:
        """The registered type ``name``, or None for a formula."""
        return None if name in self.formulas else get_constraint_type(name)

    def without(self, *names: str) -> "ConstraintConfig":
        """A copy with the weights of ``names`` set to 0 (ablations)."""
        weights = {**self.weights, **{n: 0.0 for n in names}}
        return ConstraintConfig(weights, self.options, formulas={n: f.text for n, f in self.formulas.items()},
                                class_names=self.class_names, normalisation=self.normalisation, eps=self.eps)

    def with_class_names(self, class_names: Sequence[str]) -> "ConstraintConfig":
        """A copy whose formulas are checked against ``class_names`` (background first)."""
        return ConstraintConfig(self.weights, self.options, formulas={n: f.text for n, f in self.formulas.items()},
                                class_names=class_names, normalisation=self.normalisation, eps=self.eps)

    def __repr__(self) -> str:
        active = {n: self.weights[n] for n in self.active}
        return f"ConstraintConfig(active={active}, normalisation={self.normalisation!r})"

    # -- from a config file ----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, class_names: Optional[Sequence[str]] = None) -> "ConstraintConfig":
        """From a config mapping (e.g. the ``loss:`` YAML section, module docstring).

        Each constraint entry is a weight or a mapping with ``weight`` and the type's options (or, for
        a formula, ``weight`` and ``formula``). Raises ``ValueError`` naming the valid keys otherwise.
        """
        values = dict(values)
        glob = {k: values.pop(k) for k in GLOBAL_OPTIONS if k in values}
        types = constraint_types()
        weights: Dict[str, float] = {}
        options: Dict[str, Dict[str, Any]] = {}
        formulas: Dict[str, str] = {}
        for name, entry in values.items():
            if isinstance(entry, Mapping):
                entry = dict(entry)
                if "formula" in entry:
                    extra = set(entry) - {"formula", "weight"}
                    if extra:
                        raise ValueError(f"formula constraint {name!r}: unknown keys {sorted(extra)}; valid: formula, weight")
                    formulas[name] = str(entry["formula"])
                    weights[name] = entry.get("weight", 1.0)
                    continue
                if name not in types:
                    raise ValueError(f"unknown constraint {name!r} (not registered and no 'formula'); registered: "
                                     f"{list(types)}; global options: {list(GLOBAL_OPTIONS)}")
                if "weight" in entry:
                    weights[name] = entry.pop("weight")
                options[name] = entry
            else:
                if name not in types:
                    raise ValueError(f"unknown constraint {name!r}; registered: {list(types)}; "
                                     f"global options: {list(GLOBAL_OPTIONS)}; a formula needs a 'formula' key")
                weights[name] = entry
        return cls(weights, options, formulas=formulas, class_names=class_names, **glob)
