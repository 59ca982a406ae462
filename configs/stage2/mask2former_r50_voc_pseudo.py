# Mask2Former (ResNet-50) on PASCAL VOC 2012, trained on stage 1's pseudo-masks.
# Recipe of mmseg's mask2former_r50_8xb2-160k_ade20k-512x512 (8 GPUs x 2 images, AdamW 1e-4,
# backbone lr x0.1, poly, 512x512 crops of shortest-edge-resized images), with a VOC-sized schedule
# of 40k iterations. SyncBN (frozen affine) as in mmseg; BN when not distributed.
#
# Backbone initialisation (torchvision ImageNet ResNet-50), put it at `pretrained`:
#   https://download.pytorch.org/models/resnet50-0676ba61.pth
_base_ = [
    './_base_/models/mask2former_r50.py',
    './_base_/datasets/voc12_pseudo.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(
    imports=['stage2_segnet.plugin', 'mmdet.models'],
    allow_failed_imports=False)

crop_size = (512, 512)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadVOCLabel'),
    dict(
        type='RandomChoiceResize',
        scales=[int(512 * x * 0.1) for x in range(5, 21)],
        resize_type='ResizeShortestEdge',
        max_size=2048),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
# Mask2Former's scores are per-class mask probabilities, not logits (used by the optional CRF)
val_evaluator = dict(scores='normalize')
test_evaluator = val_evaluator

# optimizer
embed_multi = dict(lr_mult=1.0, decay_mult=0.0)
optimizer = dict(
    type='AdamW', lr=0.0001, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999))
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=optimizer,
    clip_grad=dict(max_norm=0.01, norm_type=2),
    paramwise_cfg=dict(
        custom_keys={
            'backbone': dict(lr_mult=0.1, decay_mult=1.0),
            'query_embed': embed_multi,
            'query_feat': embed_multi,
            'level_embed': embed_multi,
        },
        norm_decay_mult=0.0))
# learning policy
max_iters = 40000
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=0,
        power=0.9,
        begin=0,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=4000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=4000,
        max_keep_ckpts=3, save_best='mIoU'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
auto_scale_lr = dict(enable=False, base_batch_size=16)
