"""The constraint registry: every constraint type is one module that registers itself here by name.

A registration says what the type needs and how it is built; nothing else in the toolkit names a
constraint type. :class:`~logic.constraints.compiled.CompiledConstraints` builds every registered type
whose weight is non-zero and whose inputs the image has, and the config gives weights and options by
name (:class:`~logic.constraints.config.ConstraintConfig`). A user's own type is a module of theirs::

    from logic.constraints import register_constraint

    @register_constraint("my_prior", requires=("boxes",), options={"margin": 2})
    def build_my_prior(inputs, *, margin):
        return MyPrior.build(boxes=inputs.boxes, valid=inputs.valid, margin=margin)  # a Constraint

named in the stage-1 config's ``custom_imports`` (imported before the config is read), and weighted
in its ``loss:`` section like a built-in one (``my_prior: {weight: 1.0, margin: 3}``).

Inputs (:data:`INPUTS`) are what the weak labels and the image provide, in the loss frame and cropped
to the valid pixels (:class:`ConstraintInputs`); a type is left out of an image that lacks one of its
inputs (no scribbles: no scribble constraint).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, FrozenSet, Mapping, Optional, Sequence, Tuple

import torch

from logic.constraints.base import Constraint, boxes_cover

#: Inputs a constraint type may require. ``objects``: the per-object boxes of an instance-aware
#: type, whose atoms are the object distribution (``atoms="objects"``).
INPUTS: Tuple[str, ...] = ("boxes", "scribbles", "superpixels", "image", "zero_shot", "tags", "objects")
ATOM_KINDS = ("classes", "objects")


@dataclass
class ConstraintInputs:
    """What one image offers its constraints: the ``H x W`` loss frame, cropped to the valid pixels.

    Attributes:
        num_labels: ``K``, channels of the class distribution (channel 0 background).
        valid: ``bool [H, W]`` pixels that take part in constraints.
        boxes: ``long [B, 4]`` half-open cells ``(x0, y0, x1, y1)``, or None when the image has no box
            annotation (an annotated image without objects has ``B = 0``).
        box_classes: ``long [B]`` channel of each box.
        scribbles: ``long [H, W]`` channel labels (``ignore_index`` unlabelled), or None.
        superpixels: ``long [H, W]`` superpixel ids (negative: none), or None.
        image: ``float [H, W, 3]`` RGB (0..255), or None.
        zero_shot_log_probs: ``float [K, H, W]`` the frozen model's log class distribution, or None.
        tags: ``bool [K]`` channels tagged as present in the image (image-level labels), or None.
        object_boxes: ``long [N, 4]`` the box of each object (object channel ``i + 1``), or None.
        unboxed_labels: channels of classes annotated without a box (by clicks or scribbles), which
            the boxes say nothing about.
        class_names: name of each channel (``K`` names, ``background`` first), or None.
        ignore_index: the unlabelled value of ``scribbles``.
    """

    num_labels: int
    valid: torch.Tensor
    boxes: Optional[torch.Tensor] = None
    box_classes: Optional[torch.Tensor] = None
    scribbles: Optional[torch.Tensor] = None
    superpixels: Optional[torch.Tensor] = None
    image: Optional[torch.Tensor] = None
    zero_shot_log_probs: Optional[torch.Tensor] = None
    tags: Optional[torch.Tensor] = None
    object_boxes: Optional[torch.Tensor] = None
    unboxed_labels: Tuple[int, ...] = ()
    class_names: Optional[Tuple[str, ...]] = None
    ignore_index: int = 255
    _cover: Optional[torch.Tensor] = field(default=None, repr=False)

    @property
    def available(self) -> FrozenSet[str]:
        """The names in :data:`INPUTS` this image provides."""
        have = {
            "boxes": self.boxes is not None,
            "scribbles": self.scribbles is not None,
            "superpixels": self.superpixels is not None,
            "image": self.image is not None,
            "zero_shot": self.zero_shot_log_probs is not None,
            "tags": self.tags is not None,
            "objects": self.object_boxes is not None and len(self.object_boxes) > 0,
        }
        return frozenset(name for name, ok in have.items() if ok)

    @property
    def height(self) -> int:
        return int(self.valid.shape[0])

    @property
    def width(self) -> int:
        return int(self.valid.shape[1])

    @property
    def box_cover(self) -> torch.Tensor:
        """``bool [H, W]`` pixels inside at least one box (all False without boxes)."""
        if self._cover is None:
            boxes = self.boxes if self.boxes is not None else torch.zeros((0, 4), dtype=torch.long, device=self.valid.device)
            self._cover = boxes_cover(boxes, height=self.height, width=self.width)
        return self._cover


Builder = Callable[..., Constraint]


@dataclass(frozen=True)
class ConstraintType:
    """One registered constraint type.

    Attributes:
        name: the name configs use.
        build: ``build(inputs: ConstraintInputs, **options) -> Constraint``.
        requires: inputs (:data:`INPUTS`) the image must have for the type to be built.
        options: option names and their defaults (the keyword arguments of ``build``).
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


_REGISTRY: Dict[str, ConstraintType] = {}


def register_constraint(
    name: str,
    *,
    requires: Sequence[str] = (),
    options: Optional[Mapping[str, Any]] = None,
    default_weight: float = 0.0,
    atoms: str = "classes",
    doc: Optional[str] = None,
) -> Callable[[Builder], Builder]:
    """Decorator registering ``build(inputs, **options) -> Constraint`` as constraint type ``name``.

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
            default_weight=float(default_weight), atoms=atoms, doc=line,
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
