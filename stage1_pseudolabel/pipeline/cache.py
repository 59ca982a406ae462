"""On-disk cache of SAM image embeddings: fp16, one file per image, tagged with what made it.

:class:`EmbeddingCache` is one folder for one :class:`CacheKey`: a cache or an entry made otherwise is
refused with :class:`CacheMismatchError`, never reused (docs/method.md, "SAM backends").
"""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import torch

from wsss.core.atomic import atomic_write
from wsss.core.cli import UserError

CACHE_VERSION = 2
META_FILE = "cache_meta.json"


class CacheMismatchError(UserError, RuntimeError):
    """The cache on disk was made by another model, other weights, or for another image size, or an
    entry of it cannot be read."""


@dataclass(frozen=True)
class CacheKey:
    """What determines an embedding besides the image.

    Attributes:
        model_type: ``vit_h`` ...
        encoder_fingerprint: :meth:`stage1_pseudolabel.sam.backends.base.SamBackend.encoder_fingerprint`.
        encoder_size: side of the encoder input (1024 for SAM).
        embedding_shape: ``(C, h, w)`` of one embedding (``(256, 64, 64)`` for SAM).
        backend: ``sam1``, ``sam2.1`` or ``hq-sam`` (:mod:`stage1_pseudolabel.sam.backends`).
        geometry: ``longest_side_pad`` (SAM 1, HQ-SAM) or ``square`` (SAM 2).
        extra_shapes: ``((name, (C, h, w)), ...)`` of the other cached feature maps.
    """

    model_type: str
    encoder_fingerprint: str
    encoder_size: int
    embedding_shape: Tuple[int, int, int]
    backend: str = "sam1"
    geometry: str = "longest_side_pad"
    extra_shapes: Tuple[Tuple[str, Tuple[int, ...]], ...] = ()

    @property
    def padded(self) -> bool:
        """Whether the encoder input is zero-padded (:class:`wsss.core.frames.SamFrame` ``padded``)."""
        return self.geometry == "longest_side_pad"

    @property
    def lowres_size(self) -> int:
        """Side of the decoder's low-res mask frame: SAM's decoder upsamples the embedding 4x (256)."""
        return 4 * int(self.embedding_shape[1])

    def as_dict(self) -> Dict[str, object]:
        d = asdict(self)
        d["embedding_shape"] = list(self.embedding_shape)
        d["extra_shapes"] = {name: list(shape) for name, shape in self.extra_shapes}
        d["version"] = CACHE_VERSION
        return d


def _diff(found: Dict[str, object], expected: Dict[str, object]) -> str:
    keys = sorted(set(found) | set(expected))
    return "; ".join(f"{k}: cache has {found.get(k)!r}, this run has {expected.get(k)!r}" for k in keys if found.get(k) != expected.get(k))


def atomic_torch_save(obj, path: Path, *, durable: bool = True) -> None:
    """``torch.save`` through :func:`wsss.core.atomic.atomic_write` (complete or absent; fsync'ed
    with ``durable``)."""
    with atomic_write(path, durable=durable) as handle:
        torch.save(obj, handle)


class EmbeddingCache:
    """One folder of cached embeddings for one :class:`CacheKey`.

    Layout: ``cache_meta.json`` (the key, :meth:`CacheKey.as_dict`) and one ``<image_id>.pt`` per
    image, ``{"embedding": float16 [C, h, w], "extra": {name: float16 [C', h', w']}, "meta": {the
    key's entries, "image_hw": [H, W]}}`` (``extra``: the backend's other maps, where it has some),
    renamed into place complete and read with ``torch.load(weights_only=True)``.

    Args:
        root: the cache folder (created if needed).
        key: what this run's encoder is; compared with ``cache_meta.json`` when the folder has one.
        durable: fsync every entry (and the folder) as it is written, so that it survives a power
            loss; without, an entry is still complete or absent for a process that dies.

    Raises:
        CacheMismatchError: the folder was made with another key.
    """

    def __init__(self, root: Union[str, Path], *, key: CacheKey, durable: bool = False) -> None:
        self.root = Path(root)
        self.key = key
        self.durable = durable
        self._expected = key.as_dict()
        meta_path = self.root / META_FILE
        if meta_path.is_file():
            found = json.loads(meta_path.read_text())
            if found != self._expected:
                raise CacheMismatchError(
                    f"embedding cache {self.root} was made by another model or input size ({_diff(found, self._expected)}). "
                    "Refusing to reuse it: use another --work-dir, or delete the folder to recompute."
                )
        else:
            # Shards may race here: each writes its own temporary file, and the renames are atomic.
            with atomic_write(meta_path) as handle:
                handle.write(json.dumps(self._expected, indent=2, sort_keys=True).encode())

    def path(self, image_id: str) -> Path:
        return self.root / f"{image_id}.pt"

    def has(self, image_id: str) -> bool:
        """True when a complete entry exists (entries are renamed into place only when complete)."""
        return self.path(image_id).is_file()

    def save(self, image_id: str, embedding, *, height: int, width: int) -> Path:
        """Store one image's ``[C, h, w]`` (or ``[1, C, h, w]``) embedding, or its
        :class:`~stage1_pseudolabel.sam.backends.base.ImageFeatures` (batch 1), as fp16, atomically."""
        tensors = getattr(embedding, "tensors", None) or {"image_embed": embedding}

        def half(t: torch.Tensor, shape) -> torch.Tensor:
            # A copy of its own: an image's slice of a batch is a view, and torch.save writes a
            # view's whole storage (the batch) into every file.
            return t.detach().reshape(shape).to("cpu", torch.float16).clone(memory_format=torch.contiguous_format)

        emb = half(tensors["image_embed"], self.key.embedding_shape)
        extra = {name: half(tensors[name], shape) for name, shape in self.key.extra_shapes}
        meta = dict(self._expected, image_hw=[int(height), int(width)])
        path = self.path(image_id)
        obj = {"embedding": emb, "meta": meta}
        if extra:
            obj["extra"] = extra
        atomic_torch_save(obj, path, durable=self.durable)
        return path

    def load(
        self,
        image_id: str,
        *,
        height: Optional[int] = None,
        width: Optional[int] = None,
        device: Union[str, torch.device] = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        """The embedding of ``image_id`` as ``dtype [1, C, h, w]`` on ``device`` (an
        :class:`~stage1_pseudolabel.sam.backends.base.ImageFeatures` of batch 1 when the key has
        ``extra_shapes``).

        Raises:
            FileNotFoundError: no entry (run the embed step).
            CacheMismatchError: the entry was made by another key or for another image size.
        """
        path = self.path(image_id)
        if not path.is_file():
            raise FileNotFoundError(f"no cached embedding for {image_id} at {path}: run the embed step first")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, pickle.UnpicklingError) as exc:  # e.g. cut short by a power loss
            raise CacheMismatchError(f"{path} is not a readable cache entry ({exc}); delete it and run the embed "
                                     "step again (durable_writes: true fsyncs every entry)") from exc
        meta = dict(obj.get("meta", {}))
        image_hw = meta.pop("image_hw", None)
        if meta != self._expected:
            raise CacheMismatchError(f"{path} was made by another model or input size ({_diff(meta, self._expected)})")
        if height is not None and width is not None and list(image_hw or []) != [int(height), int(width)]:
            raise CacheMismatchError(
                f"{path} was computed for a {image_hw[1]}x{image_hw[0]} image but {image_id} is {width}x{height} "
                "(another dataset in the same work dir?)"
            )
        emb = obj["embedding"].to(device=device, dtype=dtype).unsqueeze(0)
        if not self.key.extra_shapes:
            return emb
        from stage1_pseudolabel.sam.backends.base import ImageFeatures

        extra = {k: v.to(device=device, dtype=dtype).unsqueeze(0) for k, v in obj["extra"].items()}
        return ImageFeatures({"image_embed": emb, **extra})

    def nbytes(self, image_id: str) -> int:
        return self.path(image_id).stat().st_size
