# The demo's stage 2 (`make demo`): a very light DeepLabV3+ that learns something on 2 CPU cores in a
# few minutes. ResNet-18-D8 layout (ResNetV1c, output stride 8) at 1/4 width (base and stem channels
# 16), a small ASPP head with dilations for a 16x16 feature map, from scratch, 128 px crops, batch 8,
# AdamW, 400 iterations, one validation at the end. For the synthetic demo scenes (160-240 px);
# not an accuracy config for VOC.
_base_ = './tiny_deeplabv3plus_r18_smoke.py'
pretrained = None
crop_size = (128, 128)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(depth=18, stem_channels=16, base_channels=16),
    decode_head=dict(
        in_channels=128, channels=64, dilations=(1, 3, 6, 9),
        c1_in_channels=16, c1_channels=16, dropout_ratio=0.0),
    auxiliary_head=dict(in_channels=64, channels=32, dropout_ratio=0.0))

# the smoke configs' 128 px pipeline with a wider scale jitter
train_pipeline = [
    dict(t, ratio_range=(0.75, 1.5)) if t['type'] == 'RandomResize' else t
    for t in _base_.train_pipeline
]
train_dataloader = dict(batch_size=8, dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=3e-3, betas=(0.9, 0.999), weight_decay=1e-4),
    clip_grad=None)
max_iters = 400
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1, save_best=None))
randomness = dict(seed=0)
