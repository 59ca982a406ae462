"""The constraint registry: every constraint type is one module that registers itself here by name.

A registration says which inputs the type needs (:data:`~logic.grounding.inputs.INPUTS`), its options
and how it is built; nothing else in the toolkit names a constraint type.
:class:`~logic.constraints.compiled.CompiledConstraints` builds every registered type whose weight is
non-zero and whose inputs the image has. A type of one's own: docs/design.md ("Constraint types")
and ``logic/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, FrozenSet, Mapping, Optional, Sequence

from logic.grounding import INPUTS, Constraint

ATOM_KINDS = ("classes", "objects")

Builder = Callable[..., Constraint]
#: ``check(options)``: raises ``ValueError``, naming the type and the option, for an invalid value.
OptionsCheck = Callable[[Mapping[str, Any]], None]


@dataclass(frozen=True)
class ConstraintType:
    """One registered constraint type.

    Attributes:
        name: the name configs use.
        build: ``build(inputs: ConstraintInputs, **options) -> Constraint``.
        requires: inputs (:data:`~logic.grounding.inputs.INPUTS`) the image must have for the type
            to be built.
        options: option names and their defaults (the keyword arguments of ``build``).
        check_options: ``check(options)`` on the type's options (defaults and given values merged),
            raising ``ValueError`` for an invalid value; None: any value is accepted.
        default_weight: the weight when the config does not name the type.
        atoms: ``"classes"`` (the class distribution) or ``"objects"`` (the object distribution,
            ``[1 + N, H, W]``: background, then each object).
        doc: one line for listings (``wsss-train --list-constraints``).
    """

    name: str
    build: Builder
    requires: FrozenSet[str]
    options: Mapping[str, Any]
    default_weight: float = 0.0
    atoms: str = "classes"
    doc: str = ""
    check_options: Optional[OptionsCheck] = None


_REGISTRY: Dict[str, ConstraintType] = {}


def register_constraint(
    name: str,
    *,
    requires: Sequence[str] = (),
    options: Optional[Mapping[str, Any]] = None,
    default_weight: float = 0.0,
    atoms: str = "classes",
    doc: Optional[str] = None,
    check_options: Optional[OptionsCheck] = None,
) -> Callable[[Builder], Builder]:
    """Decorator registering ``build(inputs, **options) -> Constraint`` as constraint type ``name``.

    ``check_options(options)`` validates the type's options when a config is read
    (:class:`~logic.constraints.config.ConstraintConfig`): it raises ``ValueError`` naming the option.

    Raises:
        ValueError: ``name`` is taken by another builder, or ``requires`` / ``atoms`` are unknown.
    """
    unknown = set(requires) - set(INPUTS)
    if unknown:
        raise ValueError(f"constraint {name!r} requires unknown inputs {sorted(unknown)}; known: {list(INPUTS)}")
    if atoms not in ATOM_KINDS:
        raise ValueError(f"constraint {name!r}: atoms must be one of {ATOM_KINDS}, got {atoms!r}")
    if not name.isidentifier():
        raise ValueError(f"constraint name {name!r} must be an identifier (letters, digits, _)")

    def decorate(build: Builder) -> Builder:
        old = _REGISTRY.get(name)
        # Re-registering the same function (a module imported twice, e.g. reloaded) is harmless.
        if old is not None and (old.build.__module__, old.build.__qualname__) != (build.__module__, build.__qualname__):
            raise ValueError(f"constraint {name!r} is already registered by {old.build.__module__}.{old.build.__qualname__}")
        line = doc if doc is not None else (build.__doc__ or "").strip().split("\n")[0]
        _REGISTRY[name] = ConstraintType(
            name=name, build=build, requires=frozenset(requires), options=dict(options or {}),
            default_weight=float(default_weight), atoms=atoms, doc=line, check_options=check_options,
        )
        return build

    return decorate


def constraint_types() -> Dict[str, ConstraintType]:
    """Every registered type by name (a copy, in registration order)."""
    return dict(_REGISTRY)


def get_constraint_type(name: str) -> ConstraintType:
    """The registered type ``name``; ``KeyError`` listing the registered names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown constraint {name!r}; registered: {sorted(_REGISTRY)}") from None
