# Mask2Former with a Swin-L backbone (ImageNet-22k, 384 px; mmseg's
# mask2former_swin-l-in22k-384x384-pre_8xb2-160k_ade20k-640x640 backbone settings), VOC pseudo-mask
# training as mask2former_swin-b_voc_pseudo.py.
#
# Backbone initialisation (converted to mmseg's keys), put it at `pretrained`:
#   https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/swin/swin_large_patch4_window12_384_22k_20220412-6580f57d.pth
_base_ = './mask2former_swin-b_voc_pseudo.py'
pretrained = 'data/checkpoints/swin_large_patch4_window12_384_22k_20220412-6580f57d.pth'
model = dict(
    backbone=dict(
        embed_dims=192,
        num_heads=[6, 12, 24, 48],
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[192, 384, 768, 1536]))
