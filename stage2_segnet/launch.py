"""Single process, ``torchrun`` or SLURM: choosing mmengine's launcher and the shared CLI plumbing.

* Under ``torchrun`` (``LOCAL_RANK`` / ``WORLD_SIZE`` set): launcher ``pytorch``.
* Under ``srun`` with more than one task (``SLURM_NTASKS > 1``): launcher ``slurm``; mmengine reads
  the rank, world size and master address from SLURM's variables.
* Otherwise with ``--gpus N > 1``: the command re-executes itself through ``torchrun
  --nproc_per_node N`` (one process per GPU on this node).
* Otherwise: one process, launcher ``none`` (mmengine reverts SyncBN to BN there).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from wsss.core.atomic import atomic_write
from wsss.core.cli import add_config_arguments, config_file, flatten_options, parse_cfg_options, silence_known_warnings

LAUNCHERS = ("auto", "none", "pytorch", "slurm", "mpi")


def add_common_args(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, positional=True,
                         config_help="mmseg config file, e.g. configs/stage2/deeplabv3plus_r50_voc_pseudo.py")
    parser.add_argument("--data", help="the dataset's folder; alone: a VOC2012 folder (configs/datasets/voc2012.yaml)")
    parser.add_argument("--dataset", help="dataset description YAML (configs/datasets/*.yaml; default: VOC 2012's): "
                                          "images, splits, class names, palette and num_classes come from it")
    parser.add_argument("--work-dir", required=True, help="where checkpoints and logs go")
    parser.add_argument("--gpus", type=int, default=1,
                        help="processes on this node; > 1 re-launches through torchrun (default 1)")
    parser.add_argument("--launcher", choices=LAUNCHERS, default="auto",
                        help="mmengine launcher; auto: pytorch under torchrun, slurm under srun, else none")


def finish_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Resolve the config path (``--config`` or positional) and parse the overrides into
    ``args.cfg_dict`` (dotted keys, as ``Config.merge_from_dict`` takes them)."""
    args.config = config_file(args, parser, required=True)
    if not args.data and not getattr(args, "dataset", None):
        parser.error("--data (a VOC2012-layout folder) or --dataset (a dataset description) is required")
    try:
        args.cfg_dict = flatten_options(parse_cfg_options(args.cfg_options or []))
    except ValueError as exc:
        parser.error(str(exc))
    return args


def start(parse: Callable[[List[str]], argparse.Namespace],
          argv: Optional[Sequence[str]]) -> Tuple[List[str], argparse.Namespace, str]:
    """The preamble of every stage-2 entry point: filter the one known warning, register our modules
    and the checkpoint fix, parse the arguments, choose the launcher. Returns ``(argv, args, launcher)``."""
    from stage2_segnet.register import register_all

    silence_known_warnings()
    register_all()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    return argv, args, resolve_launcher(args.launcher, args.gpus)


def in_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def in_slurm_job_step() -> bool:
    return int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1 and "SLURM_PROCID" in os.environ


def resolve_launcher(requested: str, gpus: int) -> str:
    """The mmengine launcher for this process; ``"torchrun"`` means: re-launch through torchrun."""
    if requested != "auto":
        return requested
    if in_torchrun():
        return "pytorch"
    if in_slurm_job_step():
        return "slurm"
    return "torchrun" if gpus > 1 else "none"


def rank() -> int:
    for key in ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK"):
        if key in os.environ:
            return int(os.environ[key])
    return 0


def relaunch_with_torchrun(module: str, argv: Sequence[str], gpus: int) -> int:
    """Run ``python -m torch.distributed.run --nproc_per_node gpus -m module argv --launcher pytorch``."""
    import subprocess

    args = [a for a in argv]
    # drop an explicit --launcher so that the children take the pytorch launcher
    cleaned: List[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "--launcher":
            skip = True
            continue
        if a.startswith("--launcher="):
            continue
        cleaned.append(a)
    port = os.environ.get("MASTER_PORT", "29500")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={gpus}", f"--master_port={port}",
           "-m", module, *cleaned, "--launcher", "pytorch"]
    print("[stage2] launching:", " ".join(cmd), flush=True)
    return subprocess.call(cmd)


def _sync_bn_to_bn(node) -> None:
    if isinstance(node, dict):
        if node.get("type") == "SyncBN":
            node["type"] = "BN"
        for value in node.values():
            _sync_bn_to_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _sync_bn_to_bn(value)


def configure_runtime(cfg, launcher: str, work_dir: str) -> None:
    """Work dir and launcher. Distributed without CUDA (CPU processes, for checks): gloo, BN instead of
    SyncBN (torch's SyncBN needs GPUs), and DDP without device ids."""
    import torch

    cfg.work_dir = str(Path(work_dir))
    cfg.launcher = launcher
    if launcher != "none" and not torch.cuda.is_available():
        cfg.setdefault("env_cfg", {}).setdefault("dist_cfg", {})["backend"] = "gloo"
        _sync_bn_to_bn(cfg.model)
        cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None)
        if launcher == "pytorch" and not torch.distributed.is_initialized():
            # mmengine's pytorch launcher calls torch.cuda.set_device; the runner skips its own
            # initialisation when a process group exists
            torch.distributed.init_process_group("gloo")


def add_resume_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resume", nargs="?", const="auto", default=None,
                        help="resume from CKPT, or (no value) from the newest checkpoint in --work-dir")


def apply_resume(cfg, resume: Optional[str]) -> None:
    """``--resume``: ``"auto"`` resumes from the work dir's newest checkpoint (afresh if none), a path
    from that checkpoint; None leaves the config as it is."""
    if resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif resume:
        cfg.resume, cfg.load_from = True, resume


def build_runner(cfg):
    """mmengine's runner of ``cfg`` (a custom ``runner_type`` through the registry)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    return RUNNERS.build(cfg) if "runner_type" in cfg else Runner.from_cfg(cfg)


def report_last_checkpoint(cfg) -> None:
    """Rank 0 prints the checkpoint a finished training left (``<work_dir>/last_checkpoint``)."""
    last = Path(cfg.work_dir) / "last_checkpoint"
    if rank() == 0 and last.is_file():
        print(f"[stage2] done; last checkpoint: {last.read_text().strip()}", flush=True)


def set_num_classes(node, num_classes: int) -> None:
    """Every head's class count in a model config becomes ``num_classes``: each ``num_classes``, each
    ``num_things_classes`` (mmdet's Mask2Former; its stuff classes are kept), and a classification
    loss's ``class_weight`` sized for the config's count plus a no-object entry (Mask2Former), resized with
    it. Semantic heads count background in ``num_classes``, mmdet's instance heads do not: the caller
    passes the count its heads take."""
    if isinstance(node, dict):
        old = new = None
        if isinstance(node.get("num_things_classes"), int):
            stuff = int(node.get("num_stuff_classes") or 0)
            old, new = node["num_things_classes"] + stuff, num_classes + stuff
            node["num_things_classes"] = num_classes
        elif isinstance(node.get("num_classes"), int):
            old, new = node["num_classes"], num_classes
            node["num_classes"] = num_classes
        for key, value in node.items():
            if key == "loss_cls" and isinstance(value, dict) and isinstance(value.get("class_weight"), list) \
                    and old is not None and len(value["class_weight"]) == old + 1:
                value["class_weight"] = [1.0] * new + [value["class_weight"][-1]]
            set_num_classes(value, num_classes)
    elif isinstance(node, (list, tuple)):
        for value in node:
            set_num_classes(value, num_classes)


def described_split(dataset, split: Optional[str], *, with_gt: bool) -> Tuple[List[str], Optional[Path]]:
    """The ids of ``split`` of a :class:`~wsss.core.datasets.DescribedDataset` and its list file: a ``.txt``
    list of the user's, else the description's split of that name, else (no file) every image with
    ground truth (``with_gt``) or every annotated image."""
    from wsss.core.weak_labels.voc import read_id_list

    if split is not None and Path(split).suffix == ".txt":  # a list file of the user's
        if not Path(split).is_file():
            raise FileNotFoundError(f"image list {split} not found")
        path = Path(split).resolve()
        return read_id_list(path), path
    if split in dataset.description.splits:
        path = dataset.description.splits[split].resolve()
        return read_id_list(path), path
    return ([i for i in dataset.ids if dataset.has_gt(i)] if with_gt else list(dataset.ids)), None


def write_image_index(dataset, ids: Sequence[str], path: Path) -> None:
    """Write ``{id: [image path, orientation]}`` for ``ids`` of a described dataset to ``path`` (JSON):
    each image as stage 1 read it (:func:`wsss.core.weak_labels.images.read_image`), which
    stage 2's image loader (``LoadDatasetImage``) reads again so. An image stage 1 could not load
    (reported there) is read as viewers show it (``"exif"``)."""
    import warnings

    from wsss.core.weak_labels.errors import WeakLabelError, WeakLabelWarning

    index = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeakLabelWarning)  # stage 1 reported the repairs
        for image_id in dict.fromkeys(ids):
            try:
                image, orientation = dataset.image_and_orientation(image_id)
                index[image_id] = [str(image.resolve()), orientation]
            except WeakLabelError:
                index[image_id] = [str(dataset.image_path(image_id).resolve()), "exif"]
    with atomic_write(Path(path), durable=False) as handle:
        handle.write(json.dumps(index, ensure_ascii=False, sort_keys=True).encode("utf-8"))


#: mmseg's PackSegInputs defaults (mmseg 1.2.2), to which apply_dataset adds ``orientation``.
PACK_SEG_META_KEYS = ("img_path", "seg_map_path", "ori_shape", "img_shape", "pad_shape", "scale_factor", "flip",
                      "flip_direction", "reduce_zero_label")


def described_data(args: argparse.Namespace):
    """The run's dataset description: ``--dataset FILE`` (VOC 2012's when not given) with its root at
    ``--data`` when that is given."""
    from wsss.core.datasets import VOC_DESCRIPTION, load_description

    return load_description(args.dataset or VOC_DESCRIPTION,
                            overrides={"root": str(Path(args.data).expanduser())} if args.data else None)


def apply_dataset(cfg, description, *, work_dir: str, loaders: Sequence[str], splits: dict) -> dict:
    """Point a stage-2 config at a described dataset (``description``: a parsed description or its YAML
    file; :func:`described_data`): the one place where class names, palette and every head's
    ``num_classes`` come from the description (no mmseg config edits).

    ``splits`` maps each dataloader name to the split it reads (``train_dataloader: "train"``); a split
    the description does not list becomes every annotated image (train) or every image with ground
    truth (val/test; every annotated image when none is described, ``gt_dir`` None in the result).
    Each loader's ids are written as a one-column list under ``<work_dir>/lists`` (mmseg's reader
    takes one id per line; DeepLab's two-column ``train_aug.txt`` does not fit it). Each id's image (any folder,
    any extension) is in ``<work_dir>/lists/images.json`` (the dataset's ``image_index``). Ground truth
    that is not a PNG folder (COCO segmentations, LabelMe polygons) is written as palette PNGs under
    ``<work_dir>/ground_truth`` once. Returns ``{"num_foreground", "gt_dir", "image_index", "lists"}``.
    """
    from wsss.core.datasets import DescribedDataset
    from wsss.core.masks import write_mask

    dataset = DescribedDataset(description)
    classes, num_labels = tuple(dataset.classes), dataset.num_foreground + 1
    palette = dataset.palette[:num_labels].tolist()
    desc = dataset.description
    gt = desc.ground_truth
    gt_dir = None
    if gt is not None and gt.format == "png":
        gt_dir = gt.path
    elif gt is not None:
        gt_dir = Path(work_dir) / "ground_truth"
        for image_id in dataset.ids:
            target = gt_dir / f"{image_id}.png"
            if dataset.has_gt(image_id) and not target.is_file():
                write_mask(target, dataset.read_gt(image_id), num_foreground=dataset.num_foreground,
                           palette=dataset.palette, durable=False)
    lists = {}
    image_index = (Path(work_dir) / "lists" / "images.json").resolve()
    used: List[str] = []
    for loader_name in loaders:
        loader = cfg.get(loader_name)
        if loader is None:
            continue
        split = splits.get(loader_name)
        # validation / test without a list: the images with ground truth (all of them when none is described)
        ids, listed = described_split(dataset, split, with_gt=loader_name != "train_dataloader" and gt is not None)
        name = listed.stem if listed is not None else (split or loader_name)
        ann_file = (Path(work_dir) / "lists" / f"{name}.txt").resolve()
        with atomic_write(ann_file, durable=False) as handle:
            handle.write("".join(f"{i}\n" for i in ids).encode())
        if not ids:
            raise ValueError(f"{desc.path}: no images for {loader_name} (split {split!r})")
        used += ids
        lists[loader_name] = str(ann_file)
        ds = loader.dataset
        ds.data_root = str(desc.root.resolve())
        ds.ann_file = str(ann_file)
        ds.image_index = str(image_index)
        prefix = dict(ds.get("data_prefix") or {})
        prefix["img_path"] = str(desc.images.resolve())
        if gt_dir is not None:
            prefix["seg_map_path"] = str(Path(gt_dir).resolve())
        else:
            prefix.pop("seg_map_path", None)
        ds.data_prefix = prefix
        ds.metainfo = dict(classes=classes, palette=palette)
        for transform in ds.get("pipeline") or []:
            if transform.get("type") == "LoadVOCLabel":
                transform["num_foreground"] = dataset.num_foreground
            if transform.get("type") == "LoadImageFromFile":  # the orientation stage 1 used
                transform["type"] = "LoadDatasetImage"
            if transform.get("type") == "PackSegInputs":  # VOCIoUMetric's CRF reads the image so too
                transform["meta_keys"] = PACK_SEG_META_KEYS + ("orientation",)
    write_image_index(dataset, used, image_index)
    set_num_classes(cfg.model, num_labels)
    return {"num_foreground": dataset.num_foreground, "gt_dir": gt_dir, "image_index": str(image_index),
            "lists": lists}
