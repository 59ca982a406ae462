# The user's interface. Every target is a thin wrapper around a Python CLI (shown by `make help`).
# Variables can be overridden on the command line: make stage1 DATA=... SAM_CHECKPOINT=...

VENV        ?= .venv
PY          := $(VENV)/bin/python
export PYTHONUNBUFFERED := 1

# Stage 1 ---------------------------------------------------------------------------------------
DATA            ?= data/VOCdevkit/VOC2012
SPLIT           ?= train
STAGE1_CONFIG   ?= configs/stage1/voc_box_scribble.yaml
SAM_MODEL       ?= vit_h
# Empty: stage 1 uses the official file of SAM_MODEL under data/checkpoints (as `make weights` names
# it), and the demo uses the project's proxy SAM. Set it to use a checkpoint of your own everywhere.
SAM_CHECKPOINT  ?=
SAM_FILE_vit_h  := sam_vit_h_4b8939.pth
SAM_FILE_vit_l  := sam_vit_l_0b3195.pth
SAM_FILE_vit_b  := sam_vit_b_01ec64.pth
STAGE1_CHECKPOINT = $(or $(SAM_CHECKPOINT),data/checkpoints/$(or $(SAM_FILE_$(SAM_MODEL)),sam_$(SAM_MODEL).pth))
WORK            ?= work_dirs/stage1
SHARD_INDEX     ?= 0
NUM_SHARDS      ?= 1
NPROC           ?= 1
STAGE1_ARGS     ?=
STAGE1_COMMON    = --config $(STAGE1_CONFIG) --data $(DATA) --split $(SPLIT) --work-dir $(WORK) \
                   --model-type $(SAM_MODEL) --checkpoint $(STAGE1_CHECKPOINT) $(STAGE1_ARGS)

# Stage 2 ---------------------------------------------------------------------------------------
CONFIG      ?= configs/stage2/deeplabv3plus_r50_voc_pseudo.py
PSEUDO      ?= $(WORK)/pseudo_masks
STAGE2_WORK ?= work_dirs/stage2
GPUS        ?= 1
STAGE2_SPLIT ?= val
STAGE2_OUT  ?= $(STAGE2_WORK)/preds_$(STAGE2_SPLIT)
STAGE2_ARGS ?=

# Demo / benchmarks -------------------------------------------------------------------------------
DEMO_WORK   ?= work_dirs/demo
DEMO_ARGS   ?=
SYNTH_OUT   ?= data/synthetic

.PHONY: help setup test test-fast synthetic evaluate weights \
        stage1 stage1-embed stage1-train stage1-generate stage1-evaluate stage1-zeroshot \
        stage2 stage2-test proxy-sam demo bench bench-logic bench-stage1 bench-stage2 bench-quality tune-crf clean

help:
	@echo "setup            create $(VENV) and install everything (torch, SAM, OpenMMLab with mmcv ops)"
	@echo "test             run the test suite"
	@echo "demo             end-to-end demo on synthetic scenes, writes $(DEMO_WORK)/report.html"
	@echo "synthetic        write a seeded synthetic VOC-layout dataset to $(SYNTH_OUT)"
	@echo "weights          download an official SAM checkpoint to data/checkpoints (needs internet)"
	@echo "stage1           embed + train + generate + evaluate pseudo-masks (DATA, SAM_MODEL, SAM_CHECKPOINT)"
	@echo "stage2           train a segmentation network on pseudo-masks (CONFIG, PSEUDO, GPUS)"
	@echo "stage2-test      mIoU on val + VOC-format prediction PNGs (STAGE2_SPLIT=test: PNGs for the server)"
	@echo "bench-quality    baselines + stage 1 on a real dataset, with report (DATA, SAM_CHECKPOINT)"
	@echo "bench            speed benchmarks (logic, stage 1, stage 2)"
	@echo "tune-crf         choose stage 1's dense-CRF parameters on labelled images (CRF_SPLIT, SAM_CHECKPOINT)"

# -- environment ----------------------------------------------------------------------------------
setup: $(VENV)/.setup-stamp

$(VENV)/.setup-stamp: scripts/setup_env.sh requirements/core.txt requirements/test.txt requirements/stage2.txt setup.cfg pyproject.toml
	VENV=$(VENV) bash scripts/setup_env.sh
	@touch $@

test: setup
	$(PY) -m pytest -q -rs

test-fast: setup
	$(PY) -m pytest -q -m "not slow and not stage2"

# -- data and evaluation ---------------------------------------------------------------------------
synthetic: setup
	$(PY) -m stage1_pseudolabel.synthetic.cli --out $(SYNTH_OUT)

evaluate: setup
	$(PY) -m stage1_pseudolabel.evaluation.cli --pred $(PRED) --gt $(GT) $(if $(LIST),--list $(LIST),)

# -- stage 1: pseudo-labels ------------------------------------------------------------------------
weights:
	bash scripts/download_sam_weights.sh $(SAM_MODEL) data/checkpoints

stage1: stage1-embed stage1-train stage1-generate stage1-evaluate

stage1-embed: setup
	$(PY) -m stage1_pseudolabel.pipeline.embed $(STAGE1_COMMON) --shard-index $(SHARD_INDEX) --num-shards $(NUM_SHARDS)

# NPROC > 1: DDP on one node through torchrun (nccl on GPUs, gloo on CPU), same flags.
stage1-train: setup
	$(if $(filter-out 1,$(NPROC)),$(PY) -m torch.distributed.run --standalone --nproc-per-node $(NPROC),$(PY)) \
	    -m stage1_pseudolabel.pipeline.train $(STAGE1_COMMON)

stage1-generate: setup
	$(PY) -m stage1_pseudolabel.pipeline.generate $(STAGE1_COMMON) --shard-index $(SHARD_INDEX) --num-shards $(NUM_SHARDS)

stage1-evaluate: setup
	$(PY) -m stage1_pseudolabel.evaluation.cli --pred $(PSEUDO) --gt $(DATA)/SegmentationClass \
	    --list $(DATA)/ImageSets/Segmentation/$(SPLIT).txt --json $(WORK)/pseudo_miou.json

stage1-zeroshot: setup
	$(PY) -m stage1_pseudolabel.pipeline.generate $(STAGE1_COMMON) --zero-shot \
	    --shard-index $(SHARD_INDEX) --num-shards $(NUM_SHARDS)

# -- stage 2: segmentation network -----------------------------------------------------------------
stage2: setup
	$(PY) -m stage2_segnet.train $(CONFIG) --pseudo $(PSEUDO) --data $(DATA) --work-dir $(STAGE2_WORK) \
	    --gpus $(GPUS) --resume $(STAGE2_ARGS)

stage2-test: setup
	$(PY) -m stage2_segnet.test $(CONFIG) --data $(DATA) --work-dir $(STAGE2_WORK) --split $(STAGE2_SPLIT) \
	    --out-dir $(STAGE2_OUT) --gpus $(GPUS) $(STAGE2_ARGS)

# -- demo and benchmarks ---------------------------------------------------------------------------
proxy-sam: setup
	$(PY) -m stage1_pseudolabel.proxy.train_proxy --out data/checkpoints/proxy_sam.pth

demo: setup
	$(PY) -m stage1_pseudolabel.demo --work-dir $(DEMO_WORK) $(if $(SAM_CHECKPOINT),--checkpoint $(SAM_CHECKPOINT) --model-type $(SAM_MODEL) --data $(DATA),) $(DEMO_ARGS)

bench-quality: setup
	$(PY) -m stage1_pseudolabel.demo --bench-quality --data $(DATA) --split $(SPLIT) --work-dir work_dirs/bench_quality \
	    $(if $(SAM_CHECKPOINT),--checkpoint $(SAM_CHECKPOINT) --model-type $(SAM_MODEL),) $(DEMO_ARGS)

# Without SAM_CHECKPOINT: the proxy SAM on synthetic source scenes (how demo_proxy.yaml's crf was chosen).
CRF_SPLIT ?= val
tune-crf: setup
	$(PY) benchmarks/tune_crf.py $(if $(SAM_CHECKPOINT),--checkpoint $(SAM_CHECKPOINT) --model-type $(SAM_MODEL) \
	    --config configs/stage1/voc_box_scribble.yaml --data $(DATA) --split $(CRF_SPLIT),) $(CRF_ARGS)

bench: bench-logic bench-stage1 bench-stage2

bench-logic: setup
	$(PY) benchmarks/bench_logic.py

bench-stage1: setup
	$(PY) benchmarks/bench_stage1.py

bench-stage2: setup
	$(PY) benchmarks/bench_stage2.py

clean:
	rm -rf work_dirs .pytest_cache .hypothesis
