# Smoke-test Mask2Former: ResNet-18 from scratch, 64-d pixel decoder (1 deformable-attention layer),
# 3 decoder layers, 10 queries, 128 px crops, 4 iterations. Runs on CPU (mmcv's deformable attention
# falls back to its PyTorch implementation). For tests and benchmarks; not for accuracy.
_base_ = './mask2former_r50_voc_pseudo.py'
pretrained = None  # from scratch
crop_size = (128, 128)
feat = 64
model = dict(
    data_preprocessor=dict(size=crop_size),
    # from scratch: BN affine trained (the ImageNet configs freeze it)
    backbone=dict(
        depth=18, init_cfg=None,
        norm_cfg=dict(type='SyncBN', requires_grad=True)),
    decode_head=dict(
        in_channels=[64, 128, 256, 512],
        feat_channels=feat,
        out_channels=feat,
        num_queries=10,
        pixel_decoder=dict(
            encoder=dict(
                num_layers=1,
                layer_cfg=dict(
                    self_attn_cfg=dict(embed_dims=feat, num_heads=4),
                    ffn_cfg=dict(embed_dims=feat, feedforward_channels=128))),
            positional_encoding=dict(num_feats=feat // 2)),
        positional_encoding=dict(num_feats=feat // 2),
        transformer_decoder=dict(
            num_layers=3,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=feat, num_heads=4),
                cross_attn_cfg=dict(embed_dims=feat, num_heads=4),
                ffn_cfg=dict(embed_dims=feat, feedforward_channels=128))),
        train_cfg=dict(num_points=1024)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadVOCLabel'),
    dict(
        type='RandomResize',
        scale=(512, 128),
        ratio_range=(1.0, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 128), keep_ratio=True),
    dict(type='LoadVOCLabel'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 4
param_scheduler = [
    dict(type='PolyLR', eta_min=0, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=2, max_keep_ckpts=2, save_best=None))
randomness = dict(seed=0)
