# Mask R-CNN (ResNet-50 FPN) on PASCAL VOC 2012 instances, trained on stage 1's instance pseudo-labels.
# mmdet's mask-rcnn_r50_fpn_1x_coco with 20 classes and VOC-sized images (1000x600):
# 2 images per GPU, SGD lr 0.02 for 8 GPUs x 2 images (auto-scaled by --cfg-options
# auto_scale_lr.enable=True), 12 epochs, steps at 8 and 11.
# Test-time metric: COCO mask AP (segm_mAP, segm_mAP_50, segm_mAP_75) and box AP.
#
# Backbone initialisation (ImageNet, torchvision's ResNet-50; not downloaded at run time):
#   https://download.pytorch.org/models/resnet50-0676ba61.pth  -> data/checkpoints/
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    './_base_/datasets/voc12_instances_pseudo.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
pretrained = 'data/checkpoints/resnet50-0676ba61.pth'
model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    roi_head=dict(
        bbox_head=dict(num_classes=20),
        mask_head=dict(num_classes=20)))
default_hooks = dict(
    checkpoint=dict(interval=1, max_keep_ckpts=3, save_best='coco/segm_mAP', rule='greater'))
auto_scale_lr = dict(enable=False, base_batch_size=16)
