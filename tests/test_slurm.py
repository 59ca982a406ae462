"""The SLURM scripts on a fake cluster: a stand-in ``sbatch`` that runs each job at once (array tasks
one after the other, with the ``SLURM_*`` variables a real one sets), so the scripts' own logic
(shards fixed by the job, the embed -> train -> generate chain, resubmitting a subset) runs for real
on a small dataset and the reduced random-weight SAM."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wsss.core.synthetic import write_dataset
from wsss.core.weak_labels.voc import read_id_list

REPO = Path(__file__).resolve().parents[1]
NUM_TRAIN = 5

FAKE_SBATCH = r"""#!/bin/bash
# sbatch stand-in: records the submission, runs the job now (array tasks in turn), prints its id
array=""; script=""
for a in "$@"; do
  case "$a" in --array=*) array="${a#--array=}" ;; -*) ;; *) script="$a" ;; esac
done
echo "STEP=${STEP:-} $*" >> "$FAKE_SLURM_LOG"
id=$(wc -l < "$FAKE_SLURM_LOG")
tasks=()
IFS=',' read -ra parts <<< "$array"
for p in "${parts[@]}"; do
  if [[ $p == *-* ]]; then for ((i=${p%-*}; i<=${p#*-}; i++)); do tasks+=("$i"); done; else tasks+=("$p"); fi
done
if [ ${#tasks[@]} -eq 0 ]; then
  SLURM_JOB_ID=$id SLURM_SUBMIT_DIR=$PWD bash "$script" >> "$FAKE_SLURM_OUT" 2>&1 || exit $?
else
  for t in "${tasks[@]}"; do
    SLURM_ARRAY_JOB_ID=$id SLURM_ARRAY_TASK_ID=$t SLURM_ARRAY_TASK_COUNT=${#tasks[@]} SLURM_SUBMIT_DIR=$PWD \
      bash "$script" >> "$FAKE_SLURM_OUT" 2>&1 || exit $?
  done
fi
echo "$id"
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    data = write_dataset(tmp / "data", domain="target", num_train=NUM_TRAIN, num_val=0, seed=0, size_range=(96, 128))
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH)
    (bin_dir / "sbatch").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_SLURM_LOG=str(tmp / "submissions.log"),
               FAKE_SLURM_OUT=str(tmp / "jobs.out"), PY=sys.executable, CONFIG=str(REPO / "configs/stage1/tiny_random.yaml"),
               DATA=str(data), SPLIT="train", WORK=str(tmp / "work"), SAM_MODEL="vit_b", SAM_CHECKPOINT="none",
               GPUS="1", NUM_SHARDS="2", OMP_NUM_THREADS="1")
    return {"tmp": tmp, "data": data, "env": env, "masks": tmp / "work" / "pseudo_masks"}


def sbatch(cluster, *args, **env):
    return subprocess.run(["sbatch", *args], cwd=REPO, env=dict(cluster["env"], **env), capture_output=True, text=True)


@pytest.mark.slow
def test_the_chain_then_a_resubmitted_shard(cluster):
    res = subprocess.run(["bash", "scripts/slurm_pipeline.sh"], cwd=REPO, env=cluster["env"], capture_output=True,
                         text=True)
    out = (cluster["tmp"] / "jobs.out").read_text() if (cluster["tmp"] / "jobs.out").exists() else ""
    assert res.returncode == 0, res.stderr + out[-3000:]
    submissions = (cluster["tmp"] / "submissions.log").read_text().splitlines()
    assert [s.split()[0] for s in submissions] == ["STEP=embed", "STEP=", "STEP=generate"]
    assert "--dependency=afterok:1" in submissions[1] and "--dependency=afterok:2" in submissions[2]
    ids = read_id_list(cluster["data"] / "ImageSets/Segmentation/train.txt")
    masks = cluster["masks"]
    assert sorted(p.stem for p in masks.glob("*.png")) == sorted(ids)
    assert (cluster["tmp"] / "work" / "decoder" / "final.pth").is_file()

    # Task 1 lost its masks: resubmitting it alone redoes shard 1 of the same 2 (not shard 0 of 1).
    shard1 = ids[1::2]
    before = {i: (masks / f"{i}.png").read_bytes() for i in ids}
    for i in shard1:
        (masks / f"{i}.png").unlink()
    res = sbatch(cluster, "--array=1", "scripts/slurm_generate.sbatch", STEP="generate")
    assert res.returncode == 0, res.stderr
    assert {i: (masks / f"{i}.png").read_bytes() for i in ids} == before


def test_a_task_outside_the_shards_is_refused(cluster):
    res = sbatch(cluster, "--array=2", "scripts/slurm_generate.sbatch", STEP="embed")
    assert res.returncode == 2
    assert "NUM_SHARDS=2" in (cluster["tmp"] / "jobs.out").read_text()
