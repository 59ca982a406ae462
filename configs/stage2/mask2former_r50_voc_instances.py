# Mask2Former (ResNet-50) for instance segmentation on PASCAL VOC 2012, trained on stage 1's instance
# pseudo-labels. mmdet's mask2former_r50_8xb2-lsj-50e_coco with 20 classes, large-scale jitter at
# 512x512 (VOC images are about 500x375), AdamW lr 1e-4, 8 GPUs x 2 images, 20k iterations.
# Test-time metric: COCO mask AP (segm_mAP, segm_mAP_50, segm_mAP_75).
# (mmengine refuses a key from two bases, so the VOC dataset settings of
# ./_base_/datasets/voc12_instances_pseudo.py are repeated here over the COCO ones of the base.)
#
# Backbone initialisation (ImageNet, torchvision's ResNet-50; not downloaded at run time):
#   https://download.pytorch.org/models/resnet50-0676ba61.pth  -> data/checkpoints/
_base_ = ['mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py']

custom_imports = dict(
    imports=['stage2_segnet.plugin'], allow_failed_imports=False)

pretrained = 'data/checkpoints/resnet50-0676ba61.pth'
num_things_classes = 20
num_stuff_classes = 0
num_classes = num_things_classes + num_stuff_classes
image_size = (512, 512)
batch_augments = [
    dict(type='BatchFixedSizePad', size=image_size, img_pad_value=0, pad_mask=True, mask_pad_value=0,
         pad_seg=False)
]
data_preprocessor = dict(batch_augments=batch_augments)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    panoptic_head=dict(
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes))

data_root = 'data/VOCdevkit/VOC2012/'
pseudo_instances = 'work_dirs/stage1/instances/pseudo_masks.json'
val_instances = 'work_dirs/stage2_instance/gt_val_instances.json'
metainfo = dict(classes=(
    'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow', 'diningtable',
    'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor'))
train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), resize_type='Resize', keep_ratio=True),
    dict(type='RandomCrop', crop_size=image_size, crop_type='absolute', recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='Resize', scale=(1000, 600), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file=pseudo_instances,
                 data_prefix=dict(img='JPEGImages/'), pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file=val_instances,
                 data_prefix=dict(img='JPEGImages/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=val_instances, metric=['segm'])
test_evaluator = val_evaluator

max_iters = 20000
interval = 2000
param_scheduler = dict(end=max_iters, milestones=[16000, 18000])
train_cfg = dict(max_iters=max_iters, val_interval=interval, dynamic_intervals=[(max_iters + 1, max_iters)])
default_hooks = dict(
    checkpoint=dict(interval=interval, max_keep_ckpts=3, save_best='coco/segm_mAP', rule='greater'))
