# DeepLab v2 ASPP, ResNet-101, initialised as most WSSS papers do (BoxSup, ScribbleSup, BANA ...): from
# the COCO-pretrained DeepLab v2 ResNet-101 of the DeepLab authors instead of ImageNet weights. Model
# head, data and schedule are those of deeplabv2_aspp_r101_voc_pseudo.py, so the two runs differ only in
# the initialisation and in what that initialisation needs (below).
#
# The file, data/checkpoints/deeplabv1_resnet101-coco_mmseg.pth, is made from published files (nothing
# is downloaded by the toolkit):
#   1. init.caffemodel, in the DeepLab authors' release
#      http://liangchiehchen.com/projects/released/deeplab_aspp_resnet101/prototxt_and_model.zip
#   2. converted to PyTorch as deeplabv1_resnet101-coco.pth by github.com/kazuto1011/deeplab-pytorch
#      (scripts/setup_caffemodels.sh, then `python convert.py --dataset coco`)
#   3. its parameter names mapped to mmseg's ResNet (and the 91-class COCO classifier dropped) by
#      python scripts/convert_deeplabv2_coco_init.py deeplabv1_resnet101-coco.pth \
#          data/checkpoints/deeplabv1_resnet101-coco_mmseg.pth
# A missing file stops wsss-stage2-train before the runner starts, naming the path.
_base_ = ['./deeplabv2_aspp_r101_voc_pseudo.py']
pretrained = 'data/checkpoints/deeplabv1_resnet101-coco_mmseg.pth'
crop_size = (512, 512)
# The Caffe weights expect BGR images (as loaded) minus DeepLab's mean, unscaled (std 1).
data_preprocessor = dict(
    mean=[104.008, 116.669, 122.675], std=[1.0, 1.0, 1.0], bgr_to_rgb=False, size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=pretrained,
    backbone=dict(
        # MSRA ResNet as in DeepLab v2: one 7x7 stem convolution (no deep stem), stride 2 in the first 1x1
        # convolution of a block (caffe style), full dilation from the first block of a dilated stage.
        # mmseg's stem max pooling rounds down where Caffe's rounds up: for some input sizes the feature
        # maps are one row or column smaller; the weights are the same.
        type='ResNet',
        depth=101,
        deep_stem=False,
        style='caffe',
        contract_dilation=False,
        # DeepLab v2 keeps the COCO batch-norm statistics and affine parameters fixed
        # (use_global_stats in its Caffe training; kazuto1011/deeplab-pytorch's freeze_bn).
        norm_cfg=dict(type='SyncBN', requires_grad=False),
        norm_eval=True))
