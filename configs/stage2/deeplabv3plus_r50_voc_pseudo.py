# DeepLabV3+ (ResNet-50-D8, output stride 8) on PASCAL VOC 2012, trained on stage 1's pseudo-masks.
# mmseg's deeplabv3plus_r50-d8_4xb4-20k_voc12aug-512x512 with the pseudo-mask dataset:
# 4 GPUs x 4 images, 512x512 crops, SGD lr 0.01, poly, 20k iterations.
# SyncBN as in mmseg: mmengine's Runner reverts it to BN when not distributed.
# Cross-entropy averaged over labelled pixels only (pseudo-masks may leave regions at 255).
#
# Backbone initialisation (ImageNet, not downloaded at run time), put it at `pretrained`:
#   https://download.openmmlab.com/pretrain/third_party/resnet50_v1c-2cccc1ad.pth
_base_ = [
    'mmseg::_base_/models/deeplabv3plus_r50-d8.py',
    './_base_/datasets/voc12_pseudo.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py',
]
pretrained = 'data/checkpoints/resnet50_v1c-2cccc1ad.pth'
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=pretrained,
    decode_head=dict(
        num_classes=21, loss_decode=dict(avg_non_ignore=True)),
    auxiliary_head=dict(
        num_classes=21, loss_decode=dict(avg_non_ignore=True)))
default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=2000, max_keep_ckpts=3,
                    save_best='mIoU'))
