"""Speed of the logic constraint loss against SAM's mask decoder (not a test; prints a table).

    .venv/bin/python benchmarks/bench_logic.py [--devices cpu,cuda] [--sizes 256,512] [--repeats 7]
                                               [--threads N] [--breakdown] [--formulas]

For each device and map size it times one forward+backward of the full constraint set (background,
box tightness, scribbles, 8-neighbourhood, 4-connected border precision; ``log_softmax`` of random
logits included) on a ``21 x S x S`` map with 10 boxes, and one forward+backward of SAM's mask
decoder (full-size ``MaskDecoder`` + ``TwoWayTransformer``, random weights, one 64x64x256 image
embedding, the 10 boxes as prompts through ``PromptEncoder``, single-mask output). The two are timed
alternately and the medians compared, so that load drift on a shared machine affects both alike.
The decoder's output is 256x256 whatever ``S``; at 512 the loss would be evaluated on upsampled masks.

``--formulas`` also times each built-in type against the same constraint written in the formula
language (:data:`logic.formula.restated.RESTATED`, compiled per image like a config's formulas):
forward+backward medians and their ratio (target: within 2x).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stage1_pseudolabel.sam.modeling import sam_modeling  # noqa: E402
from logic.constraints import CompiledConstraints, ConstraintConfig  # noqa: E402

CONSTRAINT_NAMES = ("background", "box_tightness", "scribbles", "neighbourhood", "border_precision")
from logic.superpixels import DEFAULT_N_SEGMENTS, compute_superpixels  # noqa: E402
from wsss.core.frames import SamFrame  # noqa: E402

_sam = sam_modeling()  # a script: segment_anything (with the torchvision stand-in where needed) at start
MaskDecoder, PromptEncoder, TwoWayTransformer = _sam.MaskDecoder, _sam.PromptEncoder, _sam.TwoWayTransformer

NUM_LABELS = 21
NUM_BOXES = 10


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], None], device: torch.device) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def make_problem(size: int, seed: int = 0) -> Dict:
    """A 4:3 image (375x500) in a ``size`` low-res frame: valid mask, 10 boxes, scribbles, SLIC."""
    rng = np.random.default_rng(seed)
    frame = SamFrame(height=375, width=500, encoder_size=4 * size, lowres=size)
    valid = frame.valid_lowres().numpy()
    vh, vw = frame.valid_lowres_hw
    w = rng.integers(vw // 10, vw // 2, NUM_BOXES)
    h = rng.integers(vh // 10, vh // 2, NUM_BOXES)
    x0, y0 = rng.integers(0, vw - w), rng.integers(0, vh - h)
    boxes = np.stack([x0, y0, x0 + w, y0 + h], 1)
    box_classes = rng.integers(1, NUM_LABELS, NUM_BOXES)
    scribbles = np.full((size, size), 255, np.int64)
    for i in range(NUM_BOXES):  # a horizontal stroke through each box, and one of background
        scribbles[y0[i] + h[i] // 2, x0[i] + w[i] // 4: x0[i] + 3 * w[i] // 4] = box_classes[i]
    scribbles[vh - 3, 5: vw - 5] = 0
    # A smooth random image, so that SLIC makes segments of the usual size and shape.
    coarse = rng.integers(0, 256, (size // 16, size // 16, 3)).astype(np.uint8)
    image = np.kron(coarse, np.ones((16, 16, 1), np.uint8))
    superpixels = compute_superpixels(image, valid=valid, n_segments=DEFAULT_N_SEGMENTS * (size // 256) ** 2)
    return dict(valid=valid, boxes=boxes, box_classes=box_classes, scribbles=scribbles, superpixels=superpixels,
                frame=frame)


def logic_step(problem: Dict, device: torch.device, *, only: str = "") -> Callable[[], None]:
    weights = {n: float(not only or n == only) for n in CONSTRAINT_NAMES}
    cc = CompiledConstraints.build(
        num_labels=NUM_LABELS, boxes=problem["boxes"], box_classes=problem["box_classes"], valid=problem["valid"],
        scribbles=problem["scribbles"], superpixels=problem["superpixels"], config=ConstraintConfig(weights),
        device=device,
    )
    size = problem["valid"].shape[0]
    logits = torch.randn(NUM_LABELS, size, size, device=device, generator=None).mul_(3).requires_grad_()

    def step() -> None:
        logits.grad = None
        cc.loss(torch.log_softmax(logits, dim=0)).backward()

    return step


def formula_steps(problem: Dict, device: torch.device, name: str) -> Dict[str, Callable[[], None]]:
    """Forward+backward of built-in type ``name`` alone, hand-written and as its restated formula."""
    from logic.constraints import constraint_types
    from logic.formula.restated import RESTATED

    options, text = RESTATED[name]
    size = problem["valid"].shape[0]
    rng = np.random.default_rng(0)
    extra = dict(image=rng.integers(0, 256, (size, size, 3)).astype(np.float32),
                 zero_shot_log_probs=torch.log_softmax(torch.randn(NUM_LABELS, size, size) * 4, dim=0))
    off = {n: 0.0 for n in constraint_types()}
    configs = {"hand-written": ConstraintConfig({**off, name: 1.0}, {name: options} if options else None),
               "formula": ConstraintConfig({**off, "f": 1.0}, formulas={"f": text})}
    steps = {}
    for what, config in configs.items():
        cc = CompiledConstraints.build(
            num_labels=NUM_LABELS, boxes=problem["boxes"], box_classes=problem["box_classes"], valid=problem["valid"],
            scribbles=problem["scribbles"], superpixels=problem["superpixels"], config=config, device=device, **extra)
        logits = torch.randn(NUM_LABELS, size, size, device=device).mul_(3).requires_grad_()

        def step(cc=cc, logits=logits) -> None:
            logits.grad = None
            cc.loss(torch.log_softmax(logits, dim=0)).backward()

        steps[what] = step
    return steps


def sam_decoder_step(problem: Dict, device: torch.device) -> Callable[[], None]:
    torch.manual_seed(0)
    prompt_encoder = PromptEncoder(embed_dim=256, image_embedding_size=(64, 64), input_image_size=(1024, 1024),
                                   mask_in_chans=16).to(device)
    decoder = MaskDecoder(num_multimask_outputs=3, transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048,
                          num_heads=8), transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256).to(device)
    embedding = torch.randn(1, 256, 64, 64, device=device)
    frame = SamFrame(height=375, width=500)
    scale = 256 / problem["valid"].shape[0]  # boxes of the size-S frame -> 1024 frame
    boxes = torch.as_tensor(problem["boxes"] * scale * frame.stride, dtype=torch.float32, device=device)

    def step() -> None:
        decoder.zero_grad(set_to_none=True)
        sparse, dense = prompt_encoder(points=None, boxes=boxes, masks=None)
        low_res, iou = decoder(image_embeddings=embedding, image_pe=prompt_encoder.get_dense_pe(),
                               sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=False)
        (low_res.float().square().mean() + iou.mean()).backward()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", default="cpu,cuda", help="comma-separated; cuda is skipped where unavailable")
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--breakdown", action="store_true", help="also time each constraint type alone")
    ap.add_argument("--formulas", action="store_true", help="time each built-in type against its restated formula")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device(d) for d in args.devices.split(",") if d != "cuda" or torch.cuda.is_available()]
    sizes = [int(s) for s in args.sizes.split(",")]
    problems = {s: make_problem(s) for s in sizes}

    rows: List[tuple] = []
    for device in devices:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
        for size in sizes:
            logic, sam = logic_step(problems[size], device), sam_decoder_step(problems[size], device)
            logic(), sam()  # warm-up
            t_logic, t_sam = [], []
            for _ in range(args.repeats):  # alternate, so that load drift hits both
                t_logic.append(timed(logic, device))
                t_sam.append(timed(sam, device))
            lo, sa = statistics.median(t_logic), statistics.median(t_sam)
            rows.append((name, f"{size}x{size}", "all constraints", lo, sa))
            if args.breakdown:
                for only in CONSTRAINT_NAMES:
                    step = logic_step(problems[size], device, only=only)
                    step()
                    rows.append((name, f"{size}x{size}", only, statistics.median(timed(step, device) for _ in range(args.repeats)), sa))

    print(f"\nlogic loss vs SAM mask decoder, forward+backward, {NUM_LABELS} classes, {NUM_BOXES} boxes "
          f"(median of {args.repeats})\n")
    header = f"{'device':28s} {'map':>9s} {'constraints':>17s} {'logic ms':>10s} {'decoder ms':>11s} {'ratio':>7s}"
    print(header)
    print("-" * len(header))
    for name, size, what, lo, sa in rows:
        print(f"{name[:28]:28s} {size:>9s} {what:>17s} {lo * 1e3:10.1f} {sa * 1e3:11.1f} {lo / sa:7.3f}")
    print("\nratio = logic / decoder; target < 0.25 for 'all constraints'.")
    if args.formulas:
        from logic.formula.restated import RESTATED

        print(f"\nbuilt-in types vs the same formula compiled by logic.formula, forward+backward, median of {args.repeats}\n")
        header = f"{'device':28s} {'map':>9s} {'constraint':>17s} {'hand ms':>9s} {'formula ms':>11s} {'ratio':>7s}"
        print(header)
        print("-" * len(header))
        for device in devices:
            name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
            for size in sizes:
                for kind in RESTATED:
                    steps = formula_steps(problems[size], device, kind)
                    for step in steps.values():
                        step()  # warm-up
                    times = {w: [] for w in steps}
                    for _ in range(args.repeats):
                        for w, step in steps.items():
                            times[w].append(timed(step, device))
                    hand, form = statistics.median(times["hand-written"]), statistics.median(times["formula"])
                    print(f"{name[:28]:28s} {size:>5d}x{size:<3d} {kind:>17s} {hand * 1e3:9.1f} {form * 1e3:11.1f} {form / hand:7.2f}")
        print("\nratio = formula / hand-written; target <= 2.")


if __name__ == "__main__":
    main()
