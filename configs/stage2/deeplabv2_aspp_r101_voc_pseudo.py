# DeepLab v2-style model: ResNet-101 (dilated, output stride 8) + DeepLab v2's ASPP (four dilated 3x3
# classifiers, rates 6/12/18/24, summed; stage2_segnet.models.DeepLabV2Head). No auxiliary head,
# no decoder. Trained like the DeepLabV3+ configs (SGD 0.01, poly, 20k iterations, 512x512 crops).
#
# Backbone initialisation (ImageNet), put it at `pretrained`:
#   https://download.openmmlab.com/pretrain/third_party/resnet101_v1c-e67eebb6.pth
_base_ = [
    'mmseg::_base_/models/deeplabv3_r50-d8.py',
    './_base_/datasets/voc12_pseudo.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py',
]
pretrained = 'data/checkpoints/resnet101_v1c-e67eebb6.pth'
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=pretrained,
    backbone=dict(depth=101),
    decode_head=dict(
        _delete_=True,
        type='DeepLabV2Head',
        in_channels=2048,
        in_index=3,
        dilations=(6, 12, 18, 24),
        dropout_ratio=0.1,
        num_classes=21,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True)),
    auxiliary_head=None)
default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=2000, max_keep_ckpts=3,
                    save_best='mIoU'))
