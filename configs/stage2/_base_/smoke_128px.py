# What the CPU smoke configs share: 128 px crops, in-process data loading, 4 iterations, checkpoints
# every 2. Each smoke config inherits a full network config (which brings the 512 px dataset base) AND
# this file; mmengine refuses one key from two bases, so the keys here are `smoke_*` and the configs
# take them as `_base_.smoke_*`.
smoke_crop_size = (128, 128)
smoke_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadVOCLabel'),
    dict(
        type='RandomResize',
        scale=(512, 128),
        ratio_range=(1.0, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=smoke_crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
smoke_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 128), keep_ratio=True),
    dict(type='LoadVOCLabel'),
    dict(type='PackSegInputs')
]
smoke_tta_pipeline = [  # --tta at the smoke scale: 0.75 and 1.25, each also flipped
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=(int(512 * r), int(128 * r)), keep_ratio=True) for r in (0.75, 1.25)],
        [dict(type='RandomFlip', prob=0., direction='horizontal'),
         dict(type='RandomFlip', prob=1., direction='horizontal')],
        [dict(type='LoadVOCLabel')], [dict(type='PackSegInputs')]])
]
smoke_train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=smoke_train_pipeline))
smoke_val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(pipeline=smoke_test_pipeline))
smoke_max_iters = 4
smoke_train_cfg = dict(max_iters=smoke_max_iters, val_interval=smoke_max_iters)
smoke_default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=2, max_keep_ckpts=2, save_best=None))
