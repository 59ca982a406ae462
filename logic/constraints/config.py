"""Which constraints make up the loss, their weights, and how each is normalised."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Dict

from logic.ops import DEFAULT_EPS

CONSTRAINT_NAMES = (
    "background", "box_tightness", "scribbles", "neighbourhood", "border_precision",
    "box_fill", "zero_shot_anchor", "colour_affinity",
)
NORMALISATIONS = ("sum", "mean")


@dataclass(frozen=True)
class ConstraintConfig:
    """Weights and options of the constraint loss. A weight of 0 leaves the constraint out (not built).

    Attributes:
        background, box_tightness, scribbles, neighbourhood, border_precision, box_fill,
            zero_shot_anchor, colour_affinity: weight of each constraint type's log-truth in the loss.
        normalisation: ``"sum"``: plain sum of log-truths over all groundings (the thesis; constraint
            types with many groundings, e.g. neighbourhood over ``K x H x W``, dominate);
            ``"mean"``: each constraint type's log-truth divided by its number of groundings, so
            every type contributes on the scale of one grounding.
        neighbourhood_connectivity: 4 or 8.
        border_connectivity: 4 or 8 (adjacency of the border-precision pairs).
        box_fill_fraction: ``rho`` of box fill (the box's class covers at least this fraction of it).
        zero_shot_threshold: ``tau`` of the zero-shot anchor (pixels whose zero-shot class
            probability is at least this keep that class).
        colour_theta, colour_threshold, colour_dilation: colour affinity
            ``exp(-||lab_p - lab_q|| / theta) >= threshold`` for pixels ``dilation`` cells apart.
        eps: atoms are clipped to probabilities ``[eps, 1 - eps]`` (:func:`logic.ops.clamp_truth`).
    """

    background: float = 1.0
    box_tightness: float = 1.0
    scribbles: float = 1.0
    neighbourhood: float = 1.0
    border_precision: float = 1.0
    box_fill: float = 0.0
    zero_shot_anchor: float = 0.0
    colour_affinity: float = 0.0
    normalisation: str = "mean"
    neighbourhood_connectivity: int = 8
    border_connectivity: int = 4
    box_fill_fraction: float = 0.5
    zero_shot_threshold: float = 0.9
    colour_theta: float = 2.0
    colour_threshold: float = 0.3
    colour_dilation: int = 2
    eps: float = DEFAULT_EPS

    def __post_init__(self) -> None:
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}")
        for name in ("neighbourhood_connectivity", "border_connectivity"):
            if getattr(self, name) not in (4, 8):
                raise ValueError(f"{name} must be 4 or 8, got {getattr(self, name)}")
        for name in CONSTRAINT_NAMES:
            if getattr(self, name) < 0:
                raise ValueError(f"weight {name} must be >= 0, got {getattr(self, name)}")
        for name in ("box_fill_fraction", "zero_shot_threshold", "colour_threshold"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"need 0 < {name} <= 1, got {getattr(self, name)}")
        if self.colour_theta <= 0 or self.colour_dilation < 1:
            raise ValueError(f"need colour_theta > 0 and colour_dilation >= 1, got {self.colour_theta}, {self.colour_dilation}")
        if not 0 < self.eps < 0.5:
            raise ValueError(f"need 0 < eps < 0.5, got eps={self.eps}")

    @property
    def weights(self) -> Dict[str, float]:
        return {name: float(getattr(self, name)) for name in CONSTRAINT_NAMES}

    @classmethod
    def from_dict(cls, values: Dict) -> "ConstraintConfig":
        """From a config mapping (e.g. YAML); unknown keys raise ``ValueError`` naming the valid ones.

        Weights may be given flat (``{"neighbourhood": 0.5}``) or nested (``{"weights": {...}}``).
        """
        values = dict(values)
        nested = values.pop("weights", None) or {}
        bad = set(nested) - set(CONSTRAINT_NAMES)
        if bad:
            raise ValueError(f"unknown constraint weights {sorted(bad)}; valid: {list(CONSTRAINT_NAMES)}")
        values.update(nested)
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown constraint options {sorted(unknown)}; valid: {sorted(known)}")
        return cls(**values)
