# Mask2Former with a Swin-B backbone (ImageNet-22k, 384 px; mmseg's
# mask2former_swin-b-in22k-384x384-pre_8xb2-160k_ade20k-640x640 backbone settings), VOC pseudo-mask
# training as mask2former_swin-s_voc_pseudo.py (512 px crops, its schedule and lr multipliers).
#
# Backbone initialisation (converted to mmseg's keys), put it at `pretrained`:
#   https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/swin/swin_base_patch4_window12_384_22k_20220317-e5c09f74.pth
_base_ = './mask2former_swin-s_voc_pseudo.py'
pretrained = 'data/checkpoints/swin_base_patch4_window12_384_22k_20220317-e5c09f74.pth'
model = dict(
    backbone=dict(
        pretrain_img_size=384,
        embed_dims=128,
        num_heads=[4, 8, 16, 32],
        window_size=12,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[128, 256, 512, 1024]))
