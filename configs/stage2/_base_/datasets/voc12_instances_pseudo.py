# PASCAL VOC 2012 instances (20 classes) for mmdet: COCO-format JSON files.
# Training annotations: stage 1's instance pseudo-labels (`wsss-generate --instances`, shards merged by
# `wsss-merge-instances`): RLE masks, boxes = tight boxes of the masks.
# Validation / test annotations: ground-truth instances as COCO JSON (`wsss-evaluate-instances --voc
# ROOT --split val --write-gt FILE`, which `wsss-stage2-instance-train` writes itself when not given):
# SegmentationObject where it exists, else connected components of each class (approximate).
# The CLIs set data_root and the ann_files; with mmdet's own tools/train.py use --cfg-options.
_base_ = ['mmdet::_base_/datasets/coco_instance.py']

custom_imports = dict(
    imports=['stage2_segnet.plugin'], allow_failed_imports=False)

data_root = 'data/VOCdevkit/VOC2012/'
pseudo_instances = 'work_dirs/stage1/instances/pseudo_masks.json'
val_instances = 'work_dirs/stage2_instance/gt_val_instances.json'
metainfo = dict(classes=(
    'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow', 'diningtable',
    'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor'))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(1000, 600), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1000, 600), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file=pseudo_instances,
        data_prefix=dict(img='JPEGImages/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file=val_instances,
        data_prefix=dict(img='JPEGImages/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# test-time mask AP (and box AP) through pycocotools, as the instance evaluator of stage 1
val_evaluator = dict(ann_file=val_instances, metric=['bbox', 'segm'])
test_evaluator = val_evaluator
