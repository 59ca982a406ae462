# PASCAL VOC 2012, 21 classes (0 background, 255 ignored, reduce_zero_label off).
# Training labels: stage 1's pseudo-masks (`pseudo_dir`, one <id>.png per image of the train list).
# Validation / test labels: the real SegmentationClass.
# `python -m stage2_segnet.train --data ... --pseudo ...` sets data_root and pseudo_dir; with mmseg's
# own tools/train.py use --cfg-options as printed in configs/stage2/README.md.
_base_ = ['mmseg::_base_/datasets/pascal_voc12.py']

custom_imports = dict(
    imports=['stage2_segnet.plugin'], allow_failed_imports=False)

dataset_type = 'PseudoMaskVOCDataset'
data_root = 'data/VOCdevkit/VOC2012'
pseudo_dir = 'work_dirs/stage1/pseudo_masks'
crop_size = (512, 512)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadVOCLabel'),
    dict(
        type='RandomResize',
        scale=(2048, 512),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    # labels after Resize: predictions are scored at the original size
    dict(type='LoadVOCLabel'),
    dict(type='PackSegInputs')
]
# --tta (wsss-stage2-test): the test scale times 0.5 .. 1.75, each also flipped; the views' softmax
# averaged (stage2_segnet.tta.SegTTAWithScores); labels loaded after, at the original size
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale=(int(2048 * r), int(512 * r)), keep_ratio=True) for r in img_ratios],
            [dict(type='RandomFlip', prob=0., direction='horizontal'),
             dict(type='RandomFlip', prob=1., direction='horizontal')],
            [dict(type='LoadVOCLabel')],
            [dict(type='PackSegInputs')],
        ])
]
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        pseudo_dir=pseudo_dir,
        data_prefix=dict(img_path='JPEGImages'),
        ann_file='ImageSets/Segmentation/train.txt',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt',
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='VOCIoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
