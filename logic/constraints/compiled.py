"""The constraint set of one image: built once from its weak labels, evaluated many times."""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from logic.constraints.config import ConstraintConfig
from logic.grounding import Atoms, Constraint, ConstraintInputs

ArrayLike = Union[np.ndarray, torch.Tensor]


def as_tensor(value: ArrayLike, *, dtype: torch.dtype, device: Optional[torch.device] = None) -> torch.Tensor:
    """``torch.as_tensor`` that accepts numpy arrays, tensors and lists alike."""
    return torch.as_tensor(value, dtype=dtype, device=device) if not isinstance(value, torch.Tensor) else value.to(device=device, dtype=dtype)


class CompiledConstraints:
    """All constraints of one image over ``log_probs [K, H, W]`` (channel 0 background).

    Build with :meth:`build`; evaluate with :meth:`truths` (log-truth per constraint) and :meth:`loss`
    (minus their weighted, optionally normalised, sum). Constraints with weight 0, or without the
    inputs they need (:attr:`~logic.constraints.registry.ConstraintType.requires`), are left out.
    """

    def __init__(
        self,
        *,
        constraints: Dict[str, Constraint],
        valid: torch.Tensor,
        num_labels: int,
        config: ConstraintConfig,
        crop: Tuple[int, int, int, int],
        shape: Tuple[int, int],
    ) -> None:
        self.constraints = constraints
        self.valid = valid  # [h, w] inside the crop
        self.all_valid = bool(valid.all())  # read once here, not at every evaluation
        self.num_labels = num_labels
        self.config = config
        self.crop = crop  # (r0, r1, c0, c1): bounding box of the valid pixels
        self.shape = shape  # (H, W) of the full map

    @classmethod
    def build(
        cls,
        *,
        num_labels: int,
        valid: ArrayLike,
        boxes: Optional[ArrayLike] = None,
        box_classes: Optional[ArrayLike] = None,
        scribbles: Optional[ArrayLike] = None,
        superpixels: Optional[ArrayLike] = None,
        image: Optional[ArrayLike] = None,
        zero_shot_log_probs: Optional[ArrayLike] = None,
        tags: Optional[ArrayLike] = None,
        object_boxes: Optional[ArrayLike] = None,
        unboxed_labels: Sequence[int] = (),
        class_names: Optional[Sequence[str]] = None,
        config: Optional[ConstraintConfig] = None,
        ignore_index: int = 255,
        device: Optional[torch.device] = None,
    ) -> "CompiledConstraints":
        """Compile the constraints of one image in the frame the loss is evaluated in.

        Every active constraint (:attr:`ConstraintConfig.active`) whose inputs the image has is built.

        Args:
            num_labels: ``K``, background included.
            valid: ``bool [H, W]`` pixels that take part in constraints (False on padding).
            boxes: ``int [B, 4]`` boxes as half-open cells ``(x0, y0, x1, y1)`` of the ``H x W`` map
                (e.g. :meth:`wsss.core.frames.SamFrame.boxes_to_lowres`), or None: no box annotation
                (the box constraints are left out).
            box_classes: ``int [B]`` channel of each box, in ``1..K-1``.
            scribbles: ``int [H, W]`` label map (``ignore_index`` unlabeled, ``0..K-1``), or None.
            superpixels: ``int [H, W]`` superpixel ids (negative: none), or None.
            image: ``[H, W, 3]`` RGB image in this frame (0..255), or None.
            zero_shot_log_probs: ``float [K, H, W]`` the frozen model's log class distribution in this
                frame, or None.
            tags: ``bool [K]`` channels the image is tagged with (image-level labels), or None.
            object_boxes: ``int [N, 4]`` each object's box (object channel ``i + 1`` of the object
                distribution), or None (no instance-aware constraint).
            unboxed_labels: channels of classes annotated without a box (clicks or scribbles only):
                they may lie outside the boxes, where the background constraint allows them.
            class_names: the name of each channel (``background`` first), for formulas' class atoms.
            config: weights and options (default: the registered defaults).
            ignore_index: the unlabeled value of ``scribbles``.
            device: where the compiled tensors live (``log_probs`` must be there too).
        """
        config = config if config is not None else ConstraintConfig()
        full_valid = as_tensor(valid, dtype=torch.bool, device=device)
        if full_valid.ndim != 2:
            raise ValueError(f"valid must be [H, W], got shape {tuple(full_valid.shape)}")
        shape = (int(full_valid.shape[0]), int(full_valid.shape[1]))
        # Everything is evaluated on the bounding box of the valid pixels only (SAM's low-res frame
        # is padded on two sides: this skips a quarter of the work for a 4:3 image).
        rows, cols = torch.nonzero(full_valid.any(dim=1)), torch.nonzero(full_valid.any(dim=0))
        if len(rows) == 0:
            return cls(constraints={}, valid=full_valid[:0, :0], num_labels=num_labels, config=config, crop=(0, 0, 0, 0), shape=shape)
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        valid_t = full_valid[r0:r1, c0:c1]

        def crop_boxes(value: Optional[ArrayLike]) -> Optional[torch.Tensor]:
            if value is None:
                return None
            out = as_tensor(value, dtype=torch.long, device=device).reshape(-1, 4)
            out = out - torch.tensor([c0, r0, c0, r0], device=out.device)
            out[:, 0::2] = out[:, 0::2].clamp(0, c1 - c0)
            out[:, 1::2] = out[:, 1::2].clamp(0, r1 - r0)
            return out

        def crop_map(value: Optional[ArrayLike], dtype: torch.dtype) -> Optional[torch.Tensor]:
            return None if value is None else as_tensor(value, dtype=dtype, device=device)[..., r0:r1, c0:c1]

        boxes_t = crop_boxes(boxes)
        box_classes_t = None
        if boxes_t is not None:
            box_classes_t = as_tensor(box_classes if box_classes is not None else [], dtype=torch.long, device=device).reshape(-1)
            if len(boxes_t) != len(box_classes_t):
                raise ValueError(f"{len(boxes_t)} boxes but {len(box_classes_t)} box classes")
        image_t = None if image is None else as_tensor(image, dtype=torch.float32, device=device)[r0:r1, c0:c1]
        if class_names is not None and len(class_names) != num_labels:
            raise ValueError(f"{len(class_names)} class names for {num_labels} channels")
        inputs = ConstraintInputs(
            num_labels=num_labels, valid=valid_t, boxes=boxes_t, box_classes=box_classes_t,
            scribbles=crop_map(scribbles, torch.long), superpixels=crop_map(superpixels, torch.long), image=image_t,
            zero_shot_log_probs=crop_map(zero_shot_log_probs, torch.float32),
            tags=None if tags is None else as_tensor(tags, dtype=torch.bool, device=device).reshape(-1),
            object_boxes=crop_boxes(object_boxes),
            unboxed_labels=tuple(int(c) for c in unboxed_labels),
            class_names=None if class_names is None else tuple(class_names), ignore_index=ignore_index,
        )
        have = inputs.available
        built: Dict[str, Constraint] = {}
        for name in config.active:
            if not config.requires(name) <= have:
                continue
            kind = config.type_of(name)
            if kind is None:
                built[name] = config.formulas[name].bind(inputs)
            else:
                constraint = kind.build(inputs, **config.options[name])
                if constraint is not None:
                    built[name] = constraint
        # Types without groundings (e.g. boxes covering every pixel: no background pixel) are dropped.
        built = {name: c for name, c in built.items() if c.num_groundings > 0}
        return cls(constraints=built, valid=valid_t, num_labels=num_labels, config=config, crop=(r0, r1, c0, c1), shape=shape)

    # -- evaluation ----------------------------------------------------------------------------------
    def _crop(self, log_probs: torch.Tensor, channels: Optional[int], what: str) -> torch.Tensor:
        if log_probs.ndim != 3 or (channels is not None and log_probs.shape[0] != channels) or tuple(log_probs.shape[1:]) != self.shape:
            want = f"[{channels if channels is not None else 'N + 1'}, {self.shape[0]}, {self.shape[1]}]"
            raise ValueError(f"{what} must be {want} as built, got {tuple(log_probs.shape)}")
        r0, r1, c0, c1 = self.crop
        return log_probs[:, r0:r1, c0:c1]

    def _atoms(self, log_probs: torch.Tensor, kind: str) -> Atoms:
        negate_all = any(c.negates_all for n, c in self.constraints.items() if self._atom_kind(n) == kind)
        return Atoms(log_probs, valid=self.valid, eps=self.config.eps, negate_all=negate_all, all_valid=self.all_valid)

    def _atom_kind(self, name: str) -> str:
        kind = self.config.type_of(name)
        return "classes" if kind is None else kind.atoms

    def atoms(self, log_probs: torch.Tensor) -> Atoms:
        """The (cropped, clamped) atoms of ``log_probs [K, H, W]``."""
        return self._atoms(self._crop(log_probs, self.num_labels, "log_probs"), "classes")

    @property
    def needs_objects(self) -> bool:
        """Whether an instance-aware constraint was built (then :meth:`truths` needs ``object_log_probs``)."""
        return any(self._atom_kind(n) == "objects" for n in self.constraints)

    def truths(self, log_probs: torch.Tensor, object_log_probs: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Log-truth of each constraint (conjunction over its groundings; not normalised).

        Args:
            log_probs: ``[K, H, W]`` per-pixel class log-probabilities (e.g. ``log_softmax`` over K).
            object_log_probs: ``[1 + N, H, W]`` per-pixel object log-probabilities (background, then
                each object), needed by instance-aware constraints (:attr:`needs_objects`).

        Returns:
            ``{name: scalar tensor}`` for the constraints present.
        """
        if self.needs_objects and object_log_probs is None:
            raise ValueError(f"constraints {[n for n in self.constraints if self._atom_kind(n) == 'objects']} "
                             "are over objects: pass object_log_probs")
        atoms = self._all_atoms(log_probs, object_log_probs)
        return {name: c.truth(atoms[self._atom_kind(name)]) for name, c in self.constraints.items()}

    def _all_atoms(self, log_probs: torch.Tensor, object_log_probs: Optional[torch.Tensor]) -> Dict[str, Atoms]:
        """The atoms of each kind: ``"classes"``, and ``"objects"`` where needed and given."""
        atoms = {"classes": self.atoms(log_probs)}
        if self.needs_objects and object_log_probs is not None:
            atoms["objects"] = self._atoms(self._crop(object_log_probs, None, "object_log_probs"), "objects")
        return atoms

    def loss_and_truths(self, log_probs: torch.Tensor, object_log_probs: Optional[torch.Tensor] = None
                        ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """The loss and the per-constraint truths (:meth:`truths`) from one evaluation.

        The loss is ``-sum_type weight * truth(type) [/ num_groundings(type)]`` (``config.normalisation``);
        a zero attached to ``log_probs``' graph when no constraint type is present.
        """
        truths = self.truths(log_probs, object_log_probs)
        total = log_probs[..., :0].sum()
        for name, truth in truths.items():
            scale = self.config.weights[name]
            if self.config.normalisation == "mean":
                scale /= self.constraints[name].num_groundings
            total = total - scale * truth
        return total, truths

    def loss(self, log_probs: torch.Tensor, object_log_probs: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The loss of :meth:`loss_and_truths`."""
        return self.loss_and_truths(log_probs, object_log_probs)[0]

    def violation_maps(self, log_probs: torch.Tensor, object_log_probs: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Where each constraint is violated: ``{name: float [H, W]}`` minus the log-truths of its
        groundings summed at their pixels (:meth:`Constraint.pixel_map`), in the full frame (0 outside
        the valid crop; a map sums to minus the constraint's log-truth). Types without a map are left out."""
        atoms = self._all_atoms(log_probs, object_log_probs)
        r0, r1, c0, c1 = self.crop
        out: Dict[str, torch.Tensor] = {}
        for name, c in self.constraints.items():
            kind = self._atom_kind(name)
            if kind not in atoms:
                continue
            local = c.pixel_map(atoms[kind])
            if local is None:
                continue
            full = local.new_zeros(self.shape)
            full[r0:r1, c0:c1] = -local
            out[name] = full
        return out

    @property
    def num_groundings(self) -> Dict[str, int]:
        return {name: c.num_groundings for name, c in self.constraints.items()}

    def to(self, device: torch.device) -> "CompiledConstraints":
        """A copy on ``device``."""
        return CompiledConstraints(
            constraints={name: c.to(device) for name, c in self.constraints.items()},
            valid=self.valid.to(device),
            num_labels=self.num_labels,
            config=self.config,
            crop=self.crop,
            shape=self.shape,
        )
