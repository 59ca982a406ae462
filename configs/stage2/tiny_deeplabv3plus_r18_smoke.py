# Smoke-test DeepLabV3+: ResNet-18-D8 from scratch, 128 px crops, 4 iterations, on CPU in seconds.
# For tests, the demo and benchmarks; not for accuracy.
_base_ = ['./deeplabv3plus_r50_voc_pseudo.py', './_base_/smoke_128px.py']
pretrained = None  # from scratch
crop_size = _base_.smoke_crop_size
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(depth=18),
    decode_head=dict(
        in_channels=512, channels=64, c1_in_channels=64, c1_channels=16),
    auxiliary_head=dict(in_channels=256, channels=32))

train_pipeline = _base_.smoke_train_pipeline
test_pipeline = _base_.smoke_test_pipeline
tta_pipeline = _base_.smoke_tta_pipeline
train_dataloader = _base_.smoke_train_dataloader
val_dataloader = _base_.smoke_val_dataloader
test_dataloader = val_dataloader
max_iters = _base_.smoke_max_iters
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = _base_.smoke_train_cfg
default_hooks = _base_.smoke_default_hooks
randomness = dict(seed=0)
