"""Map the COCO-pretrained DeepLab v2 ResNet-101 to mmseg's parameter names (a backbone checkpoint).

    python scripts/convert_deeplabv2_coco_init.py deeplabv1_resnet101-coco.pth \
        data/checkpoints/deeplabv1_resnet101-coco_mmseg.pth

The input is the DeepLab authors' ``init.caffemodel`` (COCO-pretrained ResNet-101, in
http://liangchiehchen.com/projects/released/deeplab_aspp_resnet101/prototxt_and_model.zip) as
github.com/kazuto1011/deeplab-pytorch converts it to PyTorch (``python convert.py --dataset coco`` writes
``deeplabv1_resnet101-coco.pth``). Its names follow that repository's modules; mmseg's ``ResNet``
(``style='caffe'``, no deep stem: what configs/stage2/deeplabv2_aspp_r101_voc_pseudo_cocoinit.py builds)
calls the same tensors:

    layer1.conv1.conv.weight / layer1.conv1.bn.*       -> conv1.weight / bn1.*
    layer<L>.block<B>.reduce.{conv,bn}                   -> layer<L-1>.<B-1>.conv1 / bn1
    layer<L>.block<B>.conv3x3.{conv,bn}                  -> layer<L-1>.<B-1>.conv2 / bn2
    layer<L>.block<B>.increase.{conv,bn}                 -> layer<L-1>.<B-1>.conv3 / bn3
    layer<L>.block<B>.shortcut.{conv,bn}                 -> layer<L-1>.<B-1>.downsample.0 / downsample.1
    fc.*  (the 91-class COCO classifier)                 -> dropped: DeepLab v2 trains new ASPP classifiers

(``layer1`` there is the stem, so its residual stages are ``layer2``..``layer5``; mmseg counts blocks
from 0.) The output is ``{"state_dict": ..., "meta": ...}`` with the mapped tensors unchanged. Before
writing, the mapped tensors are loaded strictly into the mmseg ResNet of their depth, so a partial or
mis-shaped file is refused here rather than half-loaded at training time (mmengine's ``Pretrained``
initialisation only logs missing keys). ``--no-check`` skips that (it needs mmsegmentation).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from wsss.core.atomic import atomic_write  # noqa: E402

STEM = re.compile(r"layer1\.conv1\.(conv|bn)\.(\w+)")
BLOCK = re.compile(r"layer([2-5])\.block(\d+)\.(reduce|conv3x3|increase|shortcut)\.(conv|bn)\.(\w+)")
CLASSIFIER = re.compile(r"fc\.\w+")
#: the published block part -> mmseg's names of (its convolution, its batch norm)
BRANCHES = {"reduce": ("conv1", "bn1"), "conv3x3": ("conv2", "bn2"), "increase": ("conv3", "bn3"),
            "shortcut": ("downsample.0", "downsample.1")}
#: blocks per residual stage -> ResNet depth (mmseg's ResNet.arch_settings for bottleneck blocks)
DEPTHS = {(3, 4, 6, 3): 50, (3, 4, 23, 3): 101, (3, 8, 36, 3): 152}


def convert_key(*, name: str) -> Optional[str]:
    """mmseg's name of the published parameter ``name``; None for the COCO classifier (dropped).

    Raises:
        ValueError: a name outside the published scheme (e.g. a trained DeepLab v2's ``aspp.*`` or
            ``base.*`` parameters: that is a VOC- or COCO-Stuff-trained model, not the initialisation).
    """
    if CLASSIFIER.fullmatch(name):
        return None
    stem = STEM.fullmatch(name)
    if stem:
        module, param = stem.groups()
        return f"{'conv1' if module == 'conv' else 'bn1'}.{param}"
    block = BLOCK.fullmatch(name)
    if block:
        layer, index, branch, module, param = block.groups()
        conv, norm = BRANCHES[branch]
        return f"layer{int(layer) - 1}.{int(index) - 1}.{conv if module == 'conv' else norm}.{param}"
    raise ValueError(f"{name!r} is not a parameter of the COCO-initialisation DeepLab v2 "
                     "(kazuto1011/deeplab-pytorch's deeplabv1_resnet101-coco.pth names)")


def convert_state_dict(*, state_dict: Mapping[str, torch.Tensor]
                       ) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """``(mmseg state dict, dropped names)``: every tensor of ``state_dict`` under its mmseg name, the
    COCO classifier's names listed as dropped. Tensors are the same objects, unchanged."""
    converted: Dict[str, torch.Tensor] = {}
    dropped: List[str] = []
    for name, tensor in state_dict.items():
        target = convert_key(name=name)
        if target is None:
            dropped.append(name)
        else:
            converted[target] = tensor
    return converted, dropped


def resnet_depth(*, state_dict: Mapping[str, torch.Tensor]) -> int:
    """The depth (50, 101, 152) of an mmseg-named bottleneck ResNet state dict, from its blocks per stage."""
    blocks = Counter()
    for name in state_dict:
        match = re.match(r"layer(\d)\.(\d+)\.conv1\.weight$", name)
        if match:
            blocks[int(match.group(1))] += 1
    layout = tuple(blocks[i] for i in range(1, 5))
    if layout not in DEPTHS:
        raise ValueError(f"blocks per stage {layout} are no ResNet-50/101/152 layout {sorted(DEPTHS)}")
    return DEPTHS[layout]


def check_loads(*, state_dict: Mapping[str, torch.Tensor]) -> int:
    """Load ``state_dict`` strictly into mmseg's caffe-style ResNet of its depth; returns the depth.

    Raises:
        RuntimeError: a missing, extra or mis-shaped tensor (torch's message lists them).
    """
    from mmseg.models.backbones import ResNet

    depth = resnet_depth(state_dict=state_dict)
    ResNet(depth=depth, style="caffe", deep_stem=False).load_state_dict(dict(state_dict), strict=True)
    return depth


def convert_file(*, src: Path, dst: Path, check: bool = True) -> Dict[str, object]:
    """Read the published file ``src``, write the mmseg backbone checkpoint ``dst``; returns its meta."""
    if not src.is_file():
        raise FileNotFoundError(f"{src}: not found (kazuto1011/deeplab-pytorch's `python convert.py "
                                "--dataset coco` writes deeplabv1_resnet101-coco.pth)")
    loaded = torch.load(src, map_location="cpu", weights_only=True)
    state_dict = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"{src}: not a state dict (a mapping of parameter names to tensors)")
    try:
        converted, dropped = convert_state_dict(state_dict=state_dict)
    except ValueError as exc:
        raise ValueError(f"{src}: {exc}") from None
    meta: Dict[str, object] = {"converted_from": src.name, "dropped": dropped,
                               "converter": "scripts/convert_deeplabv2_coco_init.py"}
    if check:
        try:
            meta["depth"] = check_loads(state_dict=converted)
        except (RuntimeError, ValueError) as exc:
            raise ValueError(f"{src}: the mapped tensors do not fit mmseg's ResNet: {exc}") from None
    with atomic_write(dst) as handle:
        torch.save({"state_dict": converted, "meta": meta}, handle)
    return meta


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="convert_deeplabv2_coco_init.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help="deeplabv1_resnet101-coco.pth (kazuto1011/deeplab-pytorch)")
    parser.add_argument("dst", type=Path, help="output, e.g. data/checkpoints/deeplabv1_resnet101-coco_mmseg.pth")
    parser.add_argument("--no-check", action="store_true", help="skip the strict load into mmseg's ResNet")
    args = parser.parse_args(argv)
    try:
        meta = convert_file(src=args.src, dst=args.dst, check=not args.no_check)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.dst} (ResNet-{meta.get('depth', '?')}; dropped {', '.join(meta['dropped']) or 'nothing'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
