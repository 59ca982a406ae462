"""The COCO-pretrained DeepLab v2 initialisation: its config, the name converter, the missing-file errors.

The converter is checked against the published model itself, written here from
kazuto1011/deeplab-pytorch's module definitions (libs/models/resnet.py, deeplabv1.py): a small state dict
under the published names, and a forward pass of that architecture in plain torch functions. The config's
backbone, loaded from the converted file through mmengine's ``Pretrained`` initialisation, must compute
the same features.
"""

from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path
from typing import Dict, Sequence

import pytest

pytest.importorskip("mmseg", reason="the OpenMMLab stack is not installed (make setup)")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

pytestmark = [pytest.mark.stage2, pytest.mark.filterwarnings("ignore:pkg_resources is deprecated")]

REPO = Path(__file__).resolve().parents[2]
COCO_CONFIG = REPO / "configs/stage2/deeplabv2_aspp_r101_voc_pseudo_cocoinit.py"
IMAGENET_CONFIG = REPO / "configs/stage2/deeplabv2_aspp_r101_voc_pseudo.py"
COCO_FILE = "data/checkpoints/deeplabv1_resnet101-coco_mmseg.pth"
BLOCKS_50 = (3, 4, 6, 3)


def converter():
    spec = importlib.util.spec_from_file_location("convert_deeplabv2_coco_init",
                                                  REPO / "scripts/convert_deeplabv2_coco_init.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def published_state_dict(*, width: int, blocks: Sequence[int], seed: int = 0) -> Dict[str, torch.Tensor]:
    """Random float64 weights under the published names of DeepLabV1(n_blocks=blocks) with ``width``
    stem channels (64 in the real file): ``layer1`` the stem, ``layer2..5`` the residual stages,
    ``fc`` the 91-class COCO classifier."""
    gen = torch.Generator().manual_seed(seed)
    sd: Dict[str, torch.Tensor] = {}

    def conv_bn(prefix: str, out_ch: int, in_ch: int, k: int) -> None:
        sd[f"{prefix}.conv.weight"] = torch.randn(out_ch, in_ch, k, k, generator=gen, dtype=torch.float64) \
            * (2.0 / (in_ch * k * k)) ** 0.5
        sd[f"{prefix}.bn.weight"] = 0.5 + torch.rand(out_ch, generator=gen, dtype=torch.float64)
        sd[f"{prefix}.bn.bias"] = 0.1 * torch.randn(out_ch, generator=gen, dtype=torch.float64)
        sd[f"{prefix}.bn.running_mean"] = 0.1 * torch.randn(out_ch, generator=gen, dtype=torch.float64)
        sd[f"{prefix}.bn.running_var"] = 0.5 + torch.rand(out_ch, generator=gen, dtype=torch.float64)
        sd[f"{prefix}.bn.num_batches_tracked"] = torch.tensor(0)

    conv_bn("layer1.conv1", width, 3, 7)
    in_ch = width
    for stage, n in enumerate(blocks):
        mid, out = width * 2 ** stage, 4 * width * 2 ** stage
        for b in range(1, n + 1):
            prefix = f"layer{stage + 2}.block{b}"
            conv_bn(f"{prefix}.reduce", mid, in_ch if b == 1 else out, 1)
            conv_bn(f"{prefix}.conv3x3", mid, mid, 3)
            conv_bn(f"{prefix}.increase", out, mid, 1)
            if b == 1:
                conv_bn(f"{prefix}.shortcut", out, in_ch, 1)
        in_ch = out
    sd["fc.weight"] = torch.randn(91, in_ch, 1, 1, generator=gen, dtype=torch.float64)
    sd["fc.bias"] = torch.randn(91, generator=gen, dtype=torch.float64)
    return sd


def published_forward(sd: Dict[str, torch.Tensor], x: torch.Tensor, *, blocks: Sequence[int]) -> torch.Tensor:
    """The last residual stage of the published DeepLab v2 backbone (eval mode): 7x7 stem, ceil-mode max
    pooling, stride 2 in each stage's first 1x1 ``reduce``, stages 4 and 5 dilated 2 and 4 throughout."""
    def conv_bn(h, prefix, stride=1, pad=0, dil=1, relu=True):
        h = F.conv2d(h, sd[f"{prefix}.conv.weight"], stride=stride, padding=pad, dilation=dil)
        h = F.batch_norm(h, sd[f"{prefix}.bn.running_mean"], sd[f"{prefix}.bn.running_var"],
                         sd[f"{prefix}.bn.weight"], sd[f"{prefix}.bn.bias"], False, 0.0, 1e-5)
        return F.relu(h) if relu else h

    x = F.max_pool2d(conv_bn(x, "layer1.conv1", stride=2, pad=3), 3, 2, 1, ceil_mode=True)
    for stage, (n, stride, dil) in enumerate(zip(blocks, (1, 2, 1, 1), (1, 1, 2, 4))):
        for b in range(1, n + 1):
            prefix, s = f"layer{stage + 2}.block{b}", stride if b == 1 else 1
            h = conv_bn(x, f"{prefix}.reduce", stride=s)
            h = conv_bn(h, f"{prefix}.conv3x3", pad=dil, dil=dil)
            h = conv_bn(h, f"{prefix}.increase", relu=False)
            x = F.relu(h + (conv_bn(x, f"{prefix}.shortcut", stride=s, relu=False) if b == 1 else x))
    return x


def test_config_initialises_from_the_named_coco_file_and_keeps_the_imagenet_runs_setting():
    from mmengine.config import Config

    from stage2_segnet.checks import pretrained_paths

    coco, imagenet = Config.fromfile(str(COCO_CONFIG)), Config.fromfile(str(IMAGENET_CONFIG))
    assert pretrained_paths(coco.model) == [COCO_FILE]
    assert COCO_FILE in COCO_CONFIG.read_text()  # the comment says where the file comes from
    backbone = coco.model.backbone
    assert (backbone.type, backbone.depth, backbone.style, backbone.deep_stem) == ("ResNet", 101, "caffe", False)
    assert backbone.contract_dilation is False and backbone.norm_eval is True
    assert backbone.norm_cfg.requires_grad is False
    pre = coco.model.data_preprocessor
    assert (pre.mean, pre.std, pre.bgr_to_rgb) == ([104.008, 116.669, 122.675], [1.0, 1.0, 1.0], False)
    for key in ("train_cfg", "optim_wrapper", "param_scheduler", "train_dataloader", "val_evaluator"):
        assert coco[key] == imagenet[key], key
    assert coco.model.decode_head == imagenet.model.decode_head


def test_a_missing_coco_file_is_named_by_the_preflight_and_by_mmengine(tmp_path):
    from mmengine.config import Config
    from mmseg.registry import MODELS

    from stage2_segnet.checks import check_pretrained
    from stage2_segnet.register import register_all

    register_all()
    cfg = Config.fromfile(str(COCO_CONFIG))
    missing = tmp_path / "deeplabv1_resnet101-coco_mmseg.pth"
    cfg.model.pretrained = str(missing)
    with pytest.raises(FileNotFoundError, match=rf"{re.escape(str(missing))}.*not found.*config's comment"):
        check_pretrained(cfg.model)
    # mmseg's own tools/train.py has no preflight: mmengine's checkpoint loader names the file
    backbone = copy.deepcopy(cfg.model.backbone)
    backbone.update(depth=50, norm_cfg=dict(type="BN", requires_grad=False),
                    init_cfg=dict(type="Pretrained", checkpoint=str(missing)))
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        MODELS.build(backbone).init_weights()


def test_converted_file_gives_the_config_backbone_the_published_models_features(tmp_path):
    from mmengine.config import Config
    from mmseg.registry import MODELS

    from stage2_segnet.register import register_all

    register_all()
    conv = converter()
    published = published_state_dict(width=4, blocks=BLOCKS_50)
    src, dst = tmp_path / "deeplabv1_resnet101-coco.pth", tmp_path / "converted.pth"
    torch.save(published, src)
    meta = conv.convert_file(src=src, dst=dst, check=False)
    assert meta["dropped"] == ["fc.weight", "fc.bias"]
    converted = torch.load(dst, weights_only=True)["state_dict"]
    assert torch.equal(converted["layer3.0.downsample.1.running_var"],
                       published["layer4.block1.shortcut.bn.running_var"])
    assert torch.equal(converted["layer1.2.conv2.weight"], published["layer2.block3.conv3x3.conv.weight"])
    assert torch.equal(converted["bn1.bias"], published["layer1.conv1.bn.bias"])
    # the config's backbone at ResNet-50 depth and 1/16 width, initialised by mmengine from the file
    backbone = copy.deepcopy(Config.fromfile(str(COCO_CONFIG)).model.backbone)
    backbone.update(depth=50, stem_channels=4, base_channels=4, norm_cfg=dict(type="BN", requires_grad=False),
                    init_cfg=dict(type="Pretrained", checkpoint=str(dst)))
    model = MODELS.build(backbone).double()
    model.init_weights()
    model.eval()
    # 66 px: the stem gives 33 cells, where ceil- and floor-mode pooling agree
    x = torch.randn(1, 3, 66, 66, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        ours = model(x)[-1]
    reference = published_forward(published, x, blocks=BLOCKS_50)
    assert ours.shape == reference.shape == (1, 128, 9, 9)
    assert torch.allclose(ours, reference, rtol=1e-9, atol=1e-9 * reference.abs().max().item())


def test_converter_refuses_what_is_not_the_coco_initialisation(tmp_path):
    conv = converter()
    trained = published_state_dict(width=4, blocks=BLOCKS_50)
    trained["aspp.c0.weight"] = torch.zeros(21, 64, 3, 3)
    src = tmp_path / "deeplabv2_resnet101_msc-vocaug-20000.pth"
    torch.save(trained, src)
    with pytest.raises(ValueError, match=r"vocaug-20000\.pth: 'aspp\.c0\.weight' is not a parameter"):
        conv.convert_file(src=src, dst=tmp_path / "out.pth", check=False)
    # a file of the right names but not ResNet-101's shapes fails the strict load, before anything is written
    small = tmp_path / "small.pth"
    torch.save(published_state_dict(width=4, blocks=(3, 4, 23, 3)), small)
    with pytest.raises(ValueError, match=r"small\.pth: the mapped tensors do not fit mmseg's ResNet"):
        conv.convert_file(src=small, dst=tmp_path / "out.pth")
    assert not (tmp_path / "out.pth").exists()
    assert conv.main([str(tmp_path / "absent.pth"), str(tmp_path / "out.pth")]) == 2
