#!/usr/bin/env bash
# Download an official SAM checkpoint (needs internet): bash scripts/download_sam_weights.sh vit_h data/checkpoints
# Checkpoints are published by Meta at https://github.com/facebookresearch/segment-anything#model-checkpoints
set -euo pipefail
MODEL=${1:-vit_h}
DEST=${2:-data/checkpoints}
BASE=https://dl.fbaipublicfiles.com/segment_anything
case "$MODEL" in
  vit_h) FILE=sam_vit_h_4b8939.pth ;;
  vit_l) FILE=sam_vit_l_0b3195.pth ;;
  vit_b) FILE=sam_vit_b_01ec64.pth ;;
  sam2.1_hiera_tiny|sam2.1_hiera_small|sam2.1_hiera_base_plus|sam2.1_hiera_large)
    FILE=$MODEL.pt; BASE=https://dl.fbaipublicfiles.com/segment_anything_2/092824 ;;
  hq_vit_h|hq_vit_l|hq_vit_b)
    FILE=sam_${MODEL}.pth; BASE=https://huggingface.co/lkeab/hq-sam/resolve/main ;;
  vit_t)
    echo "vit_t (MobileSAM) weights are published at https://github.com/ChaoningZhang/MobileSAM (weights/mobile_sam.pt);" >&2
    echo "it also needs the mobile_sam package. Download it by hand into $DEST." >&2
    exit 2 ;;
  *) echo "unknown SAM model '$MODEL': choose vit_h, vit_l, vit_b, sam2.1_hiera_{tiny,small,base_plus,large} or hq_vit_{h,l,b}" >&2; exit 2 ;;
esac
mkdir -p "$DEST"
OUT="$DEST/$FILE"
if [ -s "$OUT" ]; then
  echo "$OUT already exists; delete it to download again"
  exit 0
fi
TMP="$OUT.part"
URL="$BASE/$FILE"
echo "downloading $URL -> $OUT"
status=0
if command -v curl >/dev/null 2>&1; then
  curl -fL --retry 3 --connect-timeout 20 -o "$TMP" "$URL" || status=$?
elif command -v wget >/dev/null 2>&1; then
  wget -q --tries=3 --timeout=20 -O "$TMP" "$URL" || status=$?
else
  echo "neither curl nor wget is installed" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  rm -f "$TMP"
  cat >&2 <<MSG
error: could not download $URL (exit $status). This machine may be offline.
Download $FILE on a machine with internet from
  https://github.com/facebookresearch/segment-anything#model-checkpoints
and copy it to $OUT, or pass SAM_CHECKPOINT=/path/to/$FILE to make.
MSG
  exit 1
fi
mv "$TMP" "$OUT"
echo "saved $OUT ($(du -h "$OUT" | cut -f1))"
