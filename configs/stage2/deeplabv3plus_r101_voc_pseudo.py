# DeepLabV3+ with ResNet-101-D8 (mmseg's deeplabv3plus_r101-d8_4xb4-20k_voc12aug-512x512).
#
# Backbone initialisation (ImageNet), put it at `pretrained`:
#   https://download.openmmlab.com/pretrain/third_party/resnet101_v1c-e67eebb6.pth
_base_ = './deeplabv3plus_r50_voc_pseudo.py'
pretrained = 'data/checkpoints/resnet101_v1c-e67eebb6.pth'
model = dict(pretrained=pretrained, backbone=dict(depth=101))
