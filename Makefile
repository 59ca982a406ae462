# The user's interface. Every target is a thin wrapper around a Python CLI (shown by `make help`).
# Variables can be overridden on the command line: make stage1 DATA=... SAM_CHECKPOINT=...
# Your own data (COCO JSON, LabelMe folder, any class list): make stage1 stage2 DATASET=configs/datasets/....yaml

VENV        ?= .venv
PY          := $(VENV)/bin/python
export PYTHONUNBUFFERED := 1

# Stage 1 ---------------------------------------------------------------------------------------
DATA            ?= data/VOCdevkit/VOC2012
# A dataset description (configs/datasets/*.yaml: images, classes, weak-label sources, ground truth,
# splits). Set: both stages read it instead of the VOC-layout DATA (class names, palette, num_classes).
DATASET         ?=
SPLIT           ?= train
STAGE1_CONFIG   ?= configs/stage1/voc_box_scribble.yaml
SAM_MODEL       ?= vit_h
# Empty: stage 1 uses the official file of SAM_MODEL under data/checkpoints (as `make weights` names
# it), and the demo uses the project's proxy SAM. Set it to use a checkpoint of your own everywhere.
SAM_CHECKPOINT  ?=
# Checkpoint file names and URLs are columns of the variant table (stage1_pseudolabel/sam/backends/variants.py,
# standard library only: any python3 reads it before `make setup`), read when a recipe uses them.
SAM_PY           = $(or $(wildcard $(PY)),python3)
STAGE1_CHECKPOINT = $(or $(SAM_CHECKPOINT),data/checkpoints/$(shell $(SAM_PY) -m stage1_pseudolabel.sam.backends.variants --file $(SAM_MODEL)))
WORK            ?= work_dirs/stage1
SHARD_INDEX     ?= 0
NUM_SHARDS      ?= 1
NPROC           ?= 1
# STAGE1_ARGS: flags every stage-1 step takes (--set section.key=value, --device, --resume ...);
# EMBED_ARGS / TRAIN_ARGS / GENERATE_ARGS: flags of one step only (e.g. TRAIN_ARGS="--epochs 2").
STAGE1_ARGS     ?=
EMBED_ARGS      ?=
TRAIN_ARGS      ?=
GENERATE_ARGS   ?=
# bench-stage1 flags, e.g. "--models vit_b,sam2.1_hiera_tiny,hq_vit_b --precisions fp32,bf16 --reduced"
BENCH_STAGE1_ARGS ?=
DATA_ARGS        = $(if $(DATASET),--dataset $(DATASET),--data $(DATA))
STAGE1_COMMON    = --config $(STAGE1_CONFIG) $(DATA_ARGS) --split $(SPLIT) --work-dir $(WORK) \
                   --model-type $(SAM_MODEL) --checkpoint $(STAGE1_CHECKPOINT) $(STAGE1_ARGS)

# Stage 2 ---------------------------------------------------------------------------------------
CONFIG      ?= configs/stage2/deeplabv3plus_r50_voc_pseudo.py
PSEUDO      ?= $(WORK)/pseudo_masks
STAGE2_WORK ?= work_dirs/stage2
GPUS        ?= 1
STAGE2_SPLIT ?= val
STAGE2_OUT  ?= $(STAGE2_WORK)/preds_$(STAGE2_SPLIT)
STAGE2_ARGS ?=

# Instances (stage1-instances, merge-instances, evaluate-instances, stage2-instance) ---------------------
INSTANCES            ?= $(WORK)/instances/pseudo_masks.json
INSTANCE_CONFIG      ?= configs/stage2/mask_rcnn_r50_fpn_voc_instances.py
STAGE2_INSTANCE_WORK ?= work_dirs/stage2_instance

# Evaluation (make evaluate) ---------------------------------------------------------------------
PRED        ?= $(WORK)/pseudo_masks
GT          ?= $(DATA)/SegmentationClass
LIST        ?=

# Demo / benchmarks -------------------------------------------------------------------------------
DEMO_WORK   ?= work_dirs/demo$(if $(WEAK_LABELS),_$(WEAK_LABELS),)
DEMO_ARGS   ?=
# boxes | scribbles | points | boxes+scribbles | scribbles+points | all; empty: the stage-1 config's
WEAK_LABELS ?=
SYNTH_OUT   ?= data/synthetic

.PHONY: help setup test test-fast data-voc synthetic evaluate weights \
        stage1 stage1-embed stage1-train stage1-generate stage1-evaluate stage1-zeroshot \
        stage1-instances merge-instances evaluate-instances \
        stage2 stage2-test stage2-submit stage2-instance stage2-instance-test voc-table proxy-sam demo demo-spread ablation bench bench-logic bench-stage1 bench-stage2 bench-synthetic bench-scale \
        gpu-check bench-quality tune-crf clean

# `make help` is generated from this file: every target with a `## text` comment, and the variables
# its recipe reads (scripts/make_help.py); nothing to keep in sync by hand.
help: ## list the targets and the variables each reads
	@python3 scripts/make_help.py $(firstword $(MAKEFILE_LIST))

# -- environment ----------------------------------------------------------------------------------
setup: $(VENV)/.setup-stamp ## create $(VENV) and install everything (torch, SAM, OpenMMLab with mmcv ops)

$(VENV)/.setup-stamp: scripts/setup_env.sh requirements/core.txt requirements/test.txt requirements/stage2.txt requirements/backends.txt setup.cfg pyproject.toml
	VENV=$(VENV) bash scripts/setup_env.sh
	@touch $@

# Test processes (pytest-xdist; tests run one torch thread each, so 2 fill CI's 2 cores). One test
# file per process (--dist loadfile): a file's module fixtures (trained decoders) are built once.
TEST_WORKERS ?= 2
test: setup ## run the test suite (what CI runs, through .ci/run); TEST_WORKERS processes
	$(PY) -m pytest -q -rs --durations=12 -n $(TEST_WORKERS) --dist loadfile

test-fast: setup ## the tests without the slow and stage-2 ones
	$(PY) -m pytest -q -m "not slow and not stage2" -n $(TEST_WORKERS) --dist loadfile

# -- data and evaluation ---------------------------------------------------------------------------
# data-voc: the downloads, as local files (nothing is downloaded); each but VOC_TAR may be left empty.
VOC_TAR        ?= downloads/VOCtrainval_11-May-2012.tar
SBD_TGZ        ?= downloads/benchmark.tgz
SCRIBBLES_ZIP  ?= downloads/scribble_annotation.zip
POINTS_JSON    ?= downloads/pascal2012_trainval_main.json
VOC_TEST_TAR   ?=
BACKGROUND_CLICKS ?= 0
data-voc: setup ## build DATA (VOC 2012 + SBD train_aug, ScribbleSup, What's the Point, test) from the downloads
	$(PY) -m wsss.core.datasets.voc_build --voc $(VOC_TAR) --out-dir $(DATA) $(if $(SBD_TGZ),--sbd $(SBD_TGZ),) \
	    $(if $(SCRIBBLES_ZIP),--scribbles $(SCRIBBLES_ZIP),) $(if $(POINTS_JSON),--points $(POINTS_JSON),) \
	    $(if $(VOC_TEST_TAR),--voc-test $(VOC_TEST_TAR),) --background-clicks $(BACKGROUND_CLICKS)

synthetic: setup ## write seeded synthetic VOC-layout datasets to SYNTH_OUT
	$(PY) -m wsss.core.synthetic.cli --out-dir $(SYNTH_OUT)

evaluate: setup ## mIoU of a folder of label PNGs against ground truth (PRED, GT, LIST)
	$(PY) -m wsss.core.evaluation.cli --pred $(PRED) --gt $(GT) $(if $(LIST),--list $(LIST),)

# -- stage 1: pseudo-labels ------------------------------------------------------------------------
weights: ## download the official checkpoint of SAM_MODEL to data/checkpoints (needs internet)
	PYTHON=$(SAM_PY) bash scripts/download_sam_weights.sh $(SAM_MODEL) data/checkpoints

stage1: stage1-embed stage1-train stage1-generate stage1-evaluate ## embed + train + generate + evaluate pseudo-masks

# NPROC > 1: NPROC processes on one node through torchrun, one GPU each: embed and generate split
# the images between them (within the shard), train is DDP (nccl on GPUs, gloo on CPU); same flags.
STAGE1_RUN = $(if $(filter-out 1,$(NPROC)),$(PY) -m torch.distributed.run --standalone --nproc-per-node $(NPROC),$(PY))

stage1-embed: setup ## cache the frozen encoder's embeddings (resumable, sharded; NPROC > 1: one process per GPU)
	$(STAGE1_RUN) -m stage1_pseudolabel.pipeline.embed $(STAGE1_COMMON) $(EMBED_ARGS) --shard-index $(SHARD_INDEX) --num-shards $(NUM_SHARDS)

stage1-train: setup ## fine-tune the mask decoder with the logic loss (NPROC > 1: DDP)
	$(STAGE1_RUN) -m stage1_pseudolabel.pipeline.train $(STAGE1_COMMON) $(TRAIN_ARGS)

stage1-generate: setup ## write one pseudo-mask PNG per image (resumable, sharded; NPROC > 1: one process per GPU)
	$(STAGE1_RUN) -m stage1_pseudolabel.pipeline.generate $(STAGE1_COMMON) $(GENERATE_ARGS) --shard-index $(SHARD_INDEX) --num-shards $(NUM_SHARDS)

stage1-evaluate: setup ## pseudo-mask mIoU against the ground truth (DATASET: its own, with its class names)
	$(PY) -m wsss.core.evaluation.cli --pred $(PSEUDO) --json $(WORK)/pseudo_miou.json \
	    $(DATA_ARGS) --split $(SPLIT)

stage1-zeroshot: setup ## pseudo-masks of the untrained decoder (the baseline of fine-tuning)
	$(PY) -m stage1_pseudolabel.pipeline.generate $(STAGE1_COMMON) $(GENERATE_ARGS) --zero-shot \
	    --shard-index $(SHARD_INDEX) --num-shards $(NUM_SHARDS)

# Instance pseudo-labels: every shard job writes $(WORK)/instances/pseudo_masks.shard<i>of<N>.json; merge
# them once all shards are done.
stage1-instances: setup ## instance pseudo-labels (COCO JSON per shard) with the masks (resumable, sharded)
	$(PY) -m stage1_pseudolabel.pipeline.generate $(STAGE1_COMMON) $(GENERATE_ARGS) --instances \
	    --shard-index $(SHARD_INDEX) --num-shards $(NUM_SHARDS)

merge-instances: setup ## merge the NUM_SHARDS instance files of stage1-instances into INSTANCES
	$(PY) -m wsss.core.instances $(WORK)/instances/pseudo_masks.shard*of$(NUM_SHARDS)*.json --out $(INSTANCES)

evaluate-instances: setup ## mask AP / AP50 / AP75 of INSTANCES against the ground-truth instances of DATA (or DATASET)
	$(PY) -m wsss.core.evaluation.instances --pred $(INSTANCES) $(if $(DATASET),--dataset $(DATASET),--voc $(DATA)) --gt-as-pred \
	    --json $(WORK)/instances_ap.json

# -- stage 2: segmentation network -----------------------------------------------------------------
stage2: setup ## train a segmentation network on the pseudo-masks of SPLIT (resumes)
	$(PY) -m stage2_segnet.train --config $(CONFIG) --pseudo $(PSEUDO) $(DATA_ARGS) --work-dir $(STAGE2_WORK) \
	    --train-list $(SPLIT) --gpus $(GPUS) --resume $(STAGE2_ARGS)

stage2-test: setup ## mIoU on STAGE2_SPLIT + prediction PNGs (STAGE2_SPLIT=test: PNGs for the VOC server)
	$(PY) -m stage2_segnet.test --config $(CONFIG) $(DATA_ARGS) --work-dir $(STAGE2_WORK) --split $(STAGE2_SPLIT) \
	    --out-dir $(STAGE2_OUT) --gpus $(GPUS) $(STAGE2_ARGS)

stage2-submit: setup ## test-set predictions in the VOC server's layout, as a tar (needs the test images: data-voc)
	$(MAKE) stage2-test STAGE2_SPLIT=test STAGE2_OUT=$(STAGE2_WORK)/preds_test
	$(PY) -m stage2_segnet.submit --pred $(STAGE2_WORK)/preds_test --data $(DATA) \
	    --out $(STAGE2_WORK)/voc2012_test_submission.tar.gz

stage2-instance: setup ## train an instance network (INSTANCE_CONFIG, mmdet) on INSTANCES (resumes)
	$(PY) -m stage2_segnet.instances train --config $(INSTANCE_CONFIG) --pseudo $(INSTANCES) $(DATA_ARGS) \
	    --work-dir $(STAGE2_INSTANCE_WORK) --gpus $(GPUS) --resume $(STAGE2_ARGS)

stage2-instance-test: setup ## mask AP of the instance network on STAGE2_SPLIT
	$(PY) -m stage2_segnet.instances test --config $(INSTANCE_CONFIG) $(DATA_ARGS) \
	    --work-dir $(STAGE2_INSTANCE_WORK) --split $(STAGE2_SPLIT) --gpus $(GPUS) $(STAGE2_ARGS)

# Our VOC figures beside the papers' (configs/reports/voc2012_papers.yaml). STAGE2_VAL_JSON: the val
# result of stage2-test (test_val_tta_metrics.json after STAGE2_ARGS=--tta); TEST_MIOU: the evaluation
# server's test mIoU; VOC_TABLE_ARGS: e.g. "--setting supervision=boxes+scribbles --stage2-test FILE".
STAGE2_VAL_JSON ?= $(STAGE2_WORK)/test_val_metrics.json
TEST_MIOU       ?=
VOC_TABLE_ARGS  ?=
voc-table: setup ## our VOC figures beside the papers' in one Markdown table (also STAGE2_WORK/voc_table.md)
	$(PY) -m wsss.apps.voc_table --stage1 $(WORK)/pseudo_miou.json --stage2-val $(STAGE2_VAL_JSON) \
	    $(if $(TEST_MIOU),--test-miou $(TEST_MIOU),) --out $(STAGE2_WORK)/voc_table.md $(VOC_TABLE_ARGS)

# -- demo and benchmarks ---------------------------------------------------------------------------
proxy-sam: setup ## pretrain the proxy SAM (the demo's stand-in for pretrained SAM)
	$(PY) -m stage1_pseudolabel.proxy.train_proxy --out data/checkpoints/proxy_sam.pth

demo: setup ## end-to-end demo on synthetic scenes (or SAM_CHECKPOINT + DATA); writes DEMO_WORK/report.html
	$(PY) -m wsss.apps.demo --work-dir $(DEMO_WORK) $(if $(WEAK_LABELS),--weak-labels $(WEAK_LABELS),) $(if $(SAM_CHECKPOINT),--checkpoint $(SAM_CHECKPOINT) --model-type $(SAM_MODEL) --data $(DATA),) $(DEMO_ARGS)

bench-quality: setup ## baselines + stage 1 on a labelled dataset (DATA, or DATASET=description), with the report
	$(PY) -m wsss.apps.demo --bench-quality $(DATA_ARGS) --split $(SPLIT) \
	    --work-dir work_dirs/bench_quality$(if $(DATASET),_$(basename $(notdir $(DATASET))),)$(if $(WEAK_LABELS),_$(WEAK_LABELS),) $(if $(WEAK_LABELS),--weak-labels $(WEAK_LABELS),) \
	    $(if $(SAM_CHECKPOINT),--checkpoint $(SAM_CHECKPOINT) --model-type $(SAM_MODEL),) $(DEMO_ARGS)

# Leave each active constraint of the stage-1 config out once: one table of pseudo-mask mIoU. Without
# ABLATION_DATA the demo's synthetic scenes and the proxy SAM; e.g. ABLATION_DATA=../shared/data/voc2012
# ABLATION_ARGS="--config configs/stage1/proxy_voc.yaml --split val"; DATASET=configs/datasets/x.yaml
# ablates on a described dataset with ground truth instead.
ABLATION_DATA ?=
ABLATION_ARGS ?=
ablation: setup ## fine-tune leaving each constraint out once; prints a table of pseudo-mask mIoU
	$(PY) -m wsss.apps.ablation --work-dir work_dirs/ablation$(if $(ABLATION_DATA),_$(notdir $(ABLATION_DATA)),)$(if $(DATASET),_$(basename $(notdir $(DATASET))),) \
	    $(if $(ABLATION_DATA),--data $(ABLATION_DATA),)$(if $(DATASET), --dataset $(DATASET),) $(if $(SAM_CHECKPOINT),--checkpoint $(SAM_CHECKPOINT) --model-type $(SAM_MODEL),) $(ABLATION_ARGS)

# Without SAM_CHECKPOINT: the proxy SAM on synthetic source scenes (how demo_proxy.yaml's crf was chosen).
CRF_SPLIT ?= val
CRF_ARGS  ?=
tune-crf: setup ## choose stage 1's dense-CRF parameters on labelled images
	$(PY) benchmarks/tune_crf.py $(if $(SAM_CHECKPOINT),--checkpoint $(SAM_CHECKPOINT) --model-type $(SAM_MODEL) \
	    --config configs/stage1/voc_box_scribble.yaml --data $(DATA) --split $(CRF_SPLIT),) $(CRF_ARGS)

bench: bench-logic bench-stage1 bench-stage2 bench-synthetic ## all speed benchmarks

bench-logic: setup ## logic loss forward+backward vs SAM's mask decoder
	$(PY) benchmarks/bench_logic.py

bench-stage1: setup ## stage 1 seconds per image, cache size, peak memory
	$(PY) benchmarks/bench_stage1.py $(BENCH_STAGE1_ARGS)

bench-stage2: setup ## stage 2 seconds per iteration and peak memory
	$(PY) benchmarks/bench_stage2.py

bench-synthetic: setup ## milliseconds per synthetic scene (render, and written as a dataset)
	$(PY) benchmarks/bench_synthetic.py

# bench-scale flags, e.g. "--sizes 200,800 --epochs 2" on a small machine
BENCH_SCALE_ARGS ?=
bench-scale: setup ## stage 1 seconds per image per step and peak RSS at N = 500, 2000, 8000 images
	$(PY) benchmarks/bench_scale.py $(BENCH_SCALE_ARGS)

gpu-check: setup ## ViT-H on a CUDA device: embed img/s per precision and attention, train syncs, generate (JSON)
	$(PY) benchmarks/gpu_check.py --json gpu_check.json

# demo-spread runs, proxy seed:threads pairs
SPREAD_RUNS ?= 0:2,1:2,2:2,0:1
demo-spread: setup ## the demo's figures over proxy seeds and thread counts, with their range
	$(PY) benchmarks/demo_spread.py --runs $(SPREAD_RUNS)

clean: ## remove work_dirs and test caches
	rm -rf work_dirs .pytest_cache .hypothesis
