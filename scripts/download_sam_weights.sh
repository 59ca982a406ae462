#!/usr/bin/env bash
# Download the official checkpoint of a model type (needs internet):
#   bash scripts/download_sam_weights.sh [--dry-run] MODEL_TYPE [DEST]      e.g. vit_h data/checkpoints
# File names and URLs are the variant table's (stage1_pseudolabel/sam/backends/variants.py), read with
# $PYTHON (default: the repository's .venv/bin/python, else python3; the table needs the standard
# library only). --dry-run: print the URL and the destination, download nothing.
set -euo pipefail
DRY_RUN=0
if [ "${1:-}" = "--dry-run" ]; then DRY_RUN=1; shift; fi
MODEL=${1:-vit_h}
DEST=${2:-data/checkpoints}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then PYTHON=$REPO/.venv/bin/python; else PYTHON=python3; fi
fi
variants() { PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m stage1_pseudolabel.sam.backends.variants "$@"; }

FILE=$(variants --file "$MODEL")            # an unknown model type: the table says which exist (exit 2)
WHERE=$(variants --published-at "$MODEL")
if ! URL=$(variants --url "$MODEL" 2>/dev/null); then
  echo "$MODEL ($FILE) is not downloaded from a URL: it comes from $WHERE" >&2
  exit 2
fi
OUT="$DEST/$FILE"
if [ "$DRY_RUN" = 1 ]; then
  echo "$URL -> $OUT"
  exit 0
fi
mkdir -p "$DEST"
if [ -s "$OUT" ]; then
  echo "$OUT already exists; delete it to download again"
  exit 0
fi
TMP="$OUT.part"
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
Download $FILE on a machine with internet (it is published at $WHERE)
and copy it to $OUT, or pass SAM_CHECKPOINT=/path/to/$FILE to make.
MSG
  exit 1
fi
mv "$TMP" "$OUT"
echo "saved $OUT ($(du -h "$OUT" | cut -f1))"
