"""Build the PASCAL VOC 2012 layout the papers' protocol reads, from the files a user downloads.

``wsss-voc-data`` (``make data-voc``) extracts VOC from local files (nothing is downloaded), converts
SBD, the ScribbleSup XML and the What's-the-Point clicks into the VOC folder and writes the train_aug
lists; idempotent and resumable. The downloads and the protocol: docs/voc.md; what is written where:
docs/data.md ("The VOC folder wsss-voc-data builds").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tarfile
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from wsss.core.atomic import atomic_write
from wsss.core.masks import write_mask
from wsss.core.weak_labels.errors import MissingFileError, PathLike
from wsss.core.weak_labels.voc import AUG_GT_DIR, read_id_list

log = logging.getLogger(__name__)

#: Where each input is published (named when it is missing).
PUBLISHED = {
    "voc": "VOCtrainval_11-May-2012.tar, http://host.robots.ox.ac.uk/pascal/VOC/voc2012/",
    "sbd": "benchmark.tgz, http://home.bharathh.info/pubs/codes/SBD/download.html",
    "scribbles": "scribble_annotation.zip, https://jifengdai.org/downloads/scribble_sup/",
    "points": "pascal2012_trainval_main.json, https://github.com/abearman/whats-the-point1 (data/)",
    "voc_test": "VOC2012test.tar, the PASCAL VOC evaluation server (registered users)",
}
#: The official list sizes and the train_aug size they give (VOC train, VOC val, SBD train, SBD val).
OFFICIAL_SIZES = {"voc_train": 1464, "voc_val": 1449, "sbd_train": 8498, "sbd_val": 2857}
TRAIN_AUG_SIZE = 10_582
VOC_PREFIX = "VOCdevkit/VOC2012/"
SBD_PREFIX = "benchmark_RELEASE/dataset/"
SEG_LISTS = Path("ImageSets") / "Segmentation"


# -- id lists ----------------------------------------------------------------------------------------
def train_aug_ids(voc_train: Iterable[str], voc_val: Iterable[str], sbd_train: Iterable[str],
                  sbd_val: Iterable[str]) -> List[str]:
    """VOC train + SBD train + SBD val - VOC val, sorted; asserted to be 10,582 ids when the four
    lists have their official sizes (a partial download gives a partial list, said as a warning)."""
    lists = {"voc_train": set(voc_train), "voc_val": set(voc_val), "sbd_train": set(sbd_train),
             "sbd_val": set(sbd_val)}
    ids = sorted((lists["voc_train"] | lists["sbd_train"] | lists["sbd_val"]) - lists["voc_val"])
    sizes = {k: len(v) for k, v in lists.items()}
    if sizes == OFFICIAL_SIZES:
        if len(ids) != TRAIN_AUG_SIZE:
            raise ValueError(f"train_aug from the official lists has {len(ids)} ids, not {TRAIN_AUG_SIZE}: "
                             "a list was altered")
    else:
        log.warning("list sizes %s are not the official %s: train_aug has %d ids (10,582 with the full downloads)",
                    sizes, OFFICIAL_SIZES, len(ids))
    return ids


def write_id_list(path: Path, ids: Sequence[str]) -> None:
    """One id per line, written only when it changes."""
    text = "".join(f"{i}\n" for i in ids)
    if not (path.is_file() and path.read_text() == text):
        with atomic_write(path, durable=False) as handle:
            handle.write(text.encode())


# -- archives ----------------------------------------------------------------------------------------
def _needed(path: Path, size: int) -> bool:
    return not (path.is_file() and path.stat().st_size == size)


def extract(archive: Path, out: Path, *, prefix: str, keep: Callable[[str], bool] = lambda name: True,
            desc: str = "extract") -> int:
    """Extract the members of ``archive`` (tar, tar.gz or zip) under ``prefix`` into ``out`` (the
    prefix removed), those ``keep`` accepts; a file already there with the member's size is kept.
    Returns the files written."""
    written = 0
    bar = tqdm(desc=desc, unit="file", dynamic_ncols=True, disable=not sys.stderr.isatty())
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                name = info.filename
                if info.is_dir() or not name.startswith(prefix) or not keep(name[len(prefix):]):
                    continue
                target = out / name[len(prefix):]
                if _needed(target, info.file_size):
                    with zf.open(info) as src, atomic_write(target, durable=False) as dst:
                        shutil.copyfileobj(src, dst)
                    written += 1
                bar.update(1)
    else:
        with tarfile.open(archive, "r:*") as tf:
            for member in tf:  # streamed: one pass over a compressed archive
                name = member.name.lstrip("./")
                if not member.isfile() or not name.startswith(prefix) or not keep(name[len(prefix):]):
                    continue
                target = out / name[len(prefix):]
                if _needed(target, member.size):
                    src = tf.extractfile(member)
                    with src, atomic_write(target, durable=False) as dst:
                        shutil.copyfileobj(src, dst)
                    written += 1
                bar.update(1)
    bar.close()
    return written


def _member_names(archive: Path) -> List[str]:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            return zf.namelist()
    with tarfile.open(archive, "r:*") as tf:
        return tf.getnames()


def _source(path: Optional[PathLike], what: str) -> Optional[Path]:
    if path is None:
        return None
    path = Path(path)
    if not path.exists():
        raise MissingFileError(path, f"not found; it is {PUBLISHED[what]}")
    return path


def _find_prefix(folder: Path, marker: str) -> Path:
    """The folder under ``folder`` that holds ``marker`` (an unpacked archive's root, at any depth <= 3)."""
    for depth in range(4):
        for candidate in [folder] if depth == 0 else folder.glob("/".join(["*"] * depth)):
            if (candidate / marker).exists():
                return candidate
    raise MissingFileError(folder, f"no {marker} in this folder or below")


# -- conversions (in worker processes) ---------------------------------------------------------------
def _convert_sbd_class(args: Tuple[str, str]) -> int:
    from wsss.core.weak_labels.sbd import read_sbd_class_mat

    mat, png = map(Path, args)
    write_mask(png, read_sbd_class_mat(mat), durable=False)
    return 1


def _convert_sbd_instances(args: Tuple[str, str]) -> int:
    from wsss.core.weak_labels.sbd import read_sbd_instance_mat

    mat, png = map(Path, args)
    instances, _ = read_sbd_instance_mat(mat)
    if instances.max(initial=0) > 254:
        raise ValueError(f"{mat}: {int(instances.max())} objects do not fit an 8-bit PNG")
    write_mask(png, instances.astype(np.uint8), num_foreground=254, durable=False)
    return 1


def _convert_scribbles(args: Tuple[str, str, str]) -> int:
    from wsss.core.weak_labels.images import image_size
    from wsss.core.weak_labels.scribblesup import read_scribblesup_xml

    xml, png, jpg = map(Path, args)
    height, width = image_size(jpg) if jpg.is_file() else (None, None)
    write_mask(png, read_scribblesup_xml(xml, height=height, width=width), durable=False)
    return 1


def run_jobs(fn: Callable, jobs: List[tuple], *, workers: int, desc: str) -> int:
    """Run ``fn`` over ``jobs`` in ``workers`` processes (in this one for 0 or 1), with a progress bar."""
    bar = tqdm(total=len(jobs), desc=desc, unit="img", dynamic_ncols=True, disable=not sys.stderr.isatty())
    done = 0
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for n in pool.map(fn, jobs, chunksize=16):
                done += n
                bar.update(1)
    else:
        for job in jobs:
            done += fn(job)
            bar.update(1)
    bar.close()
    return done


# -- steps ---------------------------------------------------------------------------------------------
def build_voc(source: Path, out: Path) -> None:
    if source.is_dir():
        root = _find_prefix(source, "JPEGImages")
        if root.resolve() != out.resolve():
            raise ValueError(f"{source}: an unpacked VOC folder is built where it is: pass --out-dir {root} "
                             "(or no --out-dir)")
        return
    n = extract(source, out, prefix=VOC_PREFIX, desc="VOC trainval")
    log.info("VOC trainval: %d file(s) extracted to %s", n, out)


def default_out(voc: Path) -> Path:
    """The folder to build: an unpacked VOC folder itself, else ``data/VOCdevkit/VOC2012``."""
    return _find_prefix(voc, "JPEGImages") if voc.is_dir() else Path("data/VOCdevkit/VOC2012")


def build_sbd(source: Path, out: Path, *, workers: int) -> Dict[str, int]:
    """SBD's .mat files and lists under ``out/SBD``; SegmentationClassAug, SegmentationObjectAug, trainaug.txt."""
    sbd = out / "SBD"
    if source.is_dir():
        sbd = _find_prefix(source, "cls")
    else:
        keep = lambda name: name.startswith(("cls/", "inst/")) or name in ("train.txt", "val.txt")  # noqa: E731
        extract(source, sbd, prefix=SBD_PREFIX, keep=keep, desc="SBD")
    lists = {"voc_train": read_id_list(out / SEG_LISTS / "train.txt"), "voc_val": read_id_list(out / SEG_LISTS / "val.txt"),
             "sbd_train": read_id_list(sbd / "train.txt"), "sbd_val": read_id_list(sbd / "val.txt")}
    trainaug = train_aug_ids(**lists)
    write_id_list(out / SEG_LISTS / "trainaug.txt", trainaug)
    write_id_list(out / SEG_LISTS / "aug.txt", sorted(set(trainaug) - set(lists["voc_train"])))
    class_jobs, copies, inst_jobs = [], 0, []
    for image_id in sorted(set(trainaug) | set(lists["voc_val"])):
        target = out / AUG_GT_DIR / f"{image_id}.png"
        official = out / "SegmentationClass" / f"{image_id}.png"
        if not target.is_file():
            if official.is_file():
                with open(official, "rb") as src, atomic_write(target, durable=False) as dst:
                    shutil.copyfileobj(src, dst)
                copies += 1
            else:
                class_jobs.append((str(sbd / "cls" / f"{image_id}.mat"), str(target)))
        inst = out / "SegmentationObjectAug" / f"{image_id}.png"
        if (not (out / "SegmentationObject" / f"{image_id}.png").is_file() and not inst.is_file()
                and (sbd / "inst" / f"{image_id}.mat").is_file()):
            inst_jobs.append((str(sbd / "inst" / f"{image_id}.mat"), str(inst)))
    converted = run_jobs(_convert_sbd_class, class_jobs, workers=workers, desc="SBD classes")
    objects = run_jobs(_convert_sbd_instances, inst_jobs, workers=workers, desc="SBD objects")
    return {"trainaug": len(trainaug), "class_maps_from_sbd": converted, "class_maps_from_voc": copies,
            "object_maps_from_sbd": objects}


def build_scribbles(source: Path, out: Path, *, workers: int) -> int:
    folder = out / "ScribbleSup"
    if source.is_dir():
        folder = source
    else:
        names = _member_names(source)
        prefix = next((n[: n.index("pascal_2012/")] + "pascal_2012/" for n in names if "pascal_2012/" in n), "")
        extract(source, folder, prefix=prefix, keep=lambda name: name.endswith(".xml"), desc="ScribbleSup")
    xmls = sorted(folder.rglob("*.xml"))
    if any("pascal_2012" in p.parts for p in xmls):
        xmls = [p for p in xmls if "pascal_2012" in p.parts]
    jobs = [(str(p), str(out / "scribbles" / f"{p.stem}.png"), str(out / "JPEGImages" / f"{p.stem}.jpg"))
            for p in xmls if not (out / "scribbles" / f"{p.stem}.png").is_file()]
    run_jobs(_convert_scribbles, jobs, workers=workers, desc="scribbles")
    return len(xmls)


def background_clicks(scribbles: np.ndarray, count: int, *, seed: str) -> np.ndarray:
    """``float32 [<=count, 2]`` (x, y) points spread over the background strokes (value 0) of a
    scribble map, by farthest-point sampling from a start point seeded by ``seed``."""
    import zlib

    from wsss.core.weak_labels.points import farthest_points

    yy, xx = np.nonzero(scribbles == 0)
    pts = np.stack([xx, yy], 1).astype(np.float32)
    return farthest_points(pts, count, np.random.default_rng(zlib.crc32(seed.encode())))


def build_points(source: Path, out: Path, *, background: int) -> Dict[str, int]:
    from wsss.core.masks import read_mask
    from wsss.core.weak_labels.points import points_document, read_points_release

    release = read_points_release(source)
    written = with_background = 0
    for image_id, clicks in tqdm(sorted(release.items()), desc="points", unit="img", dynamic_ncols=True,
                                 disable=not sys.stderr.isatty()):
        target = out / "points" / f"{image_id}.json"
        if target.is_file():
            continue
        bg = None
        scribble = out / "scribbles" / f"{image_id}.png"
        if background > 0 and scribble.is_file():
            bg = background_clicks(read_mask(scribble), background, seed=image_id)
            with_background += 1
        with atomic_write(target, durable=False) as handle:
            handle.write(json.dumps(points_document(clicks, bg)).encode())
        written += 1
    return {"images": len(release), "written": written, "with_background_clicks": with_background}


def build_test(source: Path, out: Path) -> int:
    keep = lambda name: name.startswith("JPEGImages/") or name == "ImageSets/Segmentation/test.txt"  # noqa: E731
    return extract(source, out, prefix=VOC_PREFIX, keep=keep, desc="VOC test")


# -- entry point ---------------------------------------------------------------------------------------
def build(*, voc: PathLike, out: Optional[PathLike] = None, sbd: Optional[PathLike] = None, scribbles: Optional[PathLike] = None,
          points: Optional[PathLike] = None, voc_test: Optional[PathLike] = None, workers: int = 1,
          background: int = 0) -> Dict[str, object]:
    """Every step whose input is given, in the order they need; returns what each made (and ``out``)."""
    sources = {k: _source(v, k) for k, v in (("voc", voc), ("sbd", sbd), ("scribbles", scribbles),
                                             ("points", points), ("voc_test", voc_test))}
    if sources["voc"] is None:
        raise MissingFileError(Path("--voc"), f"required: {PUBLISHED['voc']}")
    out = Path(out) if out is not None else default_out(sources["voc"])
    report: Dict[str, object] = {"out_dir": str(out)}
    build_voc(sources["voc"], out)
    report["voc_images"] = sum(1 for _ in (out / "JPEGImages").glob("*.jpg"))
    if sources["sbd"]:
        report["sbd"] = build_sbd(sources["sbd"], out, workers=workers)
    if sources["scribbles"]:
        report["scribble_files"] = build_scribbles(sources["scribbles"], out, workers=workers)
    if sources["points"]:
        report["points"] = build_points(sources["points"], out, background=background)
    if sources["voc_test"]:
        build_test(sources["voc_test"], out)
        report["test_images"] = len(read_id_list(out / SEG_LISTS / "test.txt"))
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    from wsss.core.cli import run_cli, setup_logging

    p = argparse.ArgumentParser(prog="wsss-voc-data", description=__doc__.split("\n\n")[0])
    p.add_argument("--voc", required=True, help=f"VOC 2012 trainval tar or its unpacked folder ({PUBLISHED['voc']})")
    p.add_argument("--sbd", help=f"SBD ({PUBLISHED['sbd']}) or its unpacked folder")
    p.add_argument("--scribbles", help=f"ScribbleSup ({PUBLISHED['scribbles']}) or its unpacked folder")
    p.add_argument("--points", help=f"What's the Point clicks ({PUBLISHED['points']})")
    p.add_argument("--voc-test", dest="voc_test", help=f"VOC 2012 test images ({PUBLISHED['voc_test']})")
    p.add_argument("--out-dir", dest="out", default=None,
                   help="the VOC2012 folder to build (default: data/VOCdevkit/VOC2012, or --voc when it is a folder)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="conversion processes")
    p.add_argument("--background-clicks", type=int, default=0, dest="background",
                   help="background clicks per image drawn from the ScribbleSup background strokes (0: none)")
    args = p.parse_args(argv)
    setup_logging()

    def body() -> int:
        report = build(voc=args.voc, out=args.out, sbd=args.sbd, scribbles=args.scribbles, points=args.points,
                       voc_test=args.voc_test, workers=args.workers, background=args.background)
        print(json.dumps(report, indent=1))
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
