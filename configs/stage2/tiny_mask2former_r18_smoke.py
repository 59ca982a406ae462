# Smoke-test Mask2Former: ResNet-18 from scratch, 64-d pixel decoder (1 deformable-attention layer),
# 3 decoder layers, 10 queries, 128 px crops, 4 iterations. Runs on CPU (mmcv's deformable attention
# falls back to its PyTorch implementation). For tests and benchmarks; not for accuracy.
_base_ = ['./mask2former_r50_voc_pseudo.py', './_base_/smoke_128px.py']
pretrained = None  # from scratch
crop_size = _base_.smoke_crop_size
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

train_pipeline = _base_.smoke_train_pipeline
test_pipeline = _base_.smoke_test_pipeline
tta_pipeline = _base_.smoke_tta_pipeline
train_dataloader = _base_.smoke_train_dataloader
val_dataloader = _base_.smoke_val_dataloader
test_dataloader = val_dataloader
max_iters = _base_.smoke_max_iters
param_scheduler = [
    dict(type='PolyLR', eta_min=0, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = _base_.smoke_train_cfg
default_hooks = _base_.smoke_default_hooks
randomness = dict(seed=0)
