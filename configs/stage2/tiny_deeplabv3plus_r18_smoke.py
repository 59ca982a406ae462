# Smoke-test DeepLabV3+: ResNet-18-D8 from scratch, 128 px crops, 4 iterations, on CPU in seconds.
# For tests, the demo and benchmarks; not for accuracy.
_base_ = './deeplabv3plus_r50_voc_pseudo.py'
pretrained = None  # from scratch
crop_size = (128, 128)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(depth=18),
    decode_head=dict(
        in_channels=512, channels=64, c1_in_channels=64, c1_channels=16),
    auxiliary_head=dict(in_channels=256, channels=32))

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
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=2, max_keep_ckpts=2, save_best=None))
randomness = dict(seed=0)
