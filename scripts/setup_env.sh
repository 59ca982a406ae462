#!/usr/bin/env bash
# Creates the virtual environment and installs everything the toolkit needs (see `make setup`).
# Idempotent: each step checks before it installs, so a re-run with nothing changed takes seconds.
set -euo pipefail

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
MMCV_VERSION=2.1.0
WHEELHOUSE=${WSSS_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/wsss/wheelhouse}
# VENV_FLAGS=--system-site-packages lets a user keep a CUDA torch installed system-wide.
VENV_FLAGS=${VENV_FLAGS:-}

say() { printf '\n[setup] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  $PYTHON -m venv $VENV_FLAGS "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
PY="$VENV/bin/python"

if "$PY" -c "import torch" 2>/dev/null; then
  say "keeping torch $("$PY" -c 'import torch; print(torch.__version__, "cuda" if torch.cuda.is_available() else "cpu")')"
else
  say "installing $TORCH_SPEC"
  "${PIP[@]}" install -q "$TORCH_SPEC"
fi
TORCH_TAG=$("$PY" -c 'import torch; print(torch.__version__.replace("+", "_"))')

say "installing the toolkit's requirements"
"${PIP[@]}" install -q -r requirements/core.txt -r requirements/test.txt
"${PIP[@]}" install -q --no-deps -r requirements/stage2.txt
say "installing the SAM 2.1 and HQ-SAM backends (no torchvision: the toolkit's stand-ins serve them)"
SAM2_BUILD_CUDA=0 "${PIP[@]}" install -q --no-deps --no-build-isolation -r requirements/backends.txt

# mmcv 2.1.0 with its compiled ops: no wheel exists for this torch, so build one once per torch
# version and keep it in a wheelhouse outside the checkout (fresh clones reuse it).
if "$PY" -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" 2>/dev/null; then
  say "mmcv $MMCV_VERSION with ops already installed"
else
  HOUSE="$WHEELHOUSE/torch-$TORCH_TAG"
  WHEEL=$(ls "$HOUSE"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$WHEEL" ]; then
    say "building mmcv $MMCV_VERSION with its ops from source (15-35 minutes on 2 cores, done once)"
    mkdir -p "$HOUSE"
    # mmcv's setup.py needs torch importable (no build isolation) and setuptools < 70.
    "${PIP[@]}" install -q 'setuptools<70' wheel ninja
    MAX_JOBS=${MAX_JOBS:-$(nproc)} "${PIP[@]}" wheel -q --no-build-isolation --no-deps "mmcv==$MMCV_VERSION" -w "$HOUSE"
    "${PIP[@]}" install -q 'setuptools==80.9.0'  # >= 77 for torch; < 81 keeps pkg_resources for mmengine
    WHEEL=$(ls "$HOUSE"/mmcv-$MMCV_VERSION-*.whl | head -n 1)
  fi
  say "installing $WHEEL"
  "${PIP[@]}" install -q --no-deps "$WHEEL"
fi

say "installing the toolkit (editable)"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e .
"$PY" -c "import logic, stage1_pseudolabel, stage2_segnet, mmcv.ops, mmseg, mmdet; print('[setup] ok: torch', __import__('torch').__version__, '| mmcv', mmcv.__version__, '| mmseg', mmseg.__version__, '| mmdet', mmdet.__version__)"
