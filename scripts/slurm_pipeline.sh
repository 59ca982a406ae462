#!/bin/bash
# Stage 1 on a SLURM cluster, each step submitted after the one it needs (job dependencies):
#   embed (array of NUM_SHARDS tasks) -> train (one DDP job) -> generate (array of NUM_SHARDS tasks)
#
#   NUM_SHARDS=16 bash scripts/slurm_pipeline.sh      # CONFIG, DATA, SPLIT, WORK, SAM_MODEL ... as the scripts read
#
# A failed task is resubmitted alone (sbatch --array=<i> with the same NUM_SHARDS); a task that skipped
# unreadable images exits 3, which holds the next step back until it is looked at.
set -euo pipefail
cd "$(dirname "$0")/.."
export NUM_SHARDS=${NUM_SHARDS:-16}
LAST=$((NUM_SHARDS - 1))
embed=$(STEP=embed sbatch --parsable --array=0-$LAST scripts/slurm_generate.sbatch)
train=$(sbatch --parsable --dependency=afterok:$embed scripts/slurm_train.sbatch)
generate=$(STEP=generate sbatch --parsable --array=0-$LAST --dependency=afterok:$train scripts/slurm_generate.sbatch)
echo "submitted: embed $embed -> train $train -> generate $generate ($NUM_SHARDS shards)"
