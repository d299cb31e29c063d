#!/usr/bin/env bash
# Train one task network at paper size on several GPU nodes under Slurm: one `taskonomy train`
# process per node, each driving all of its node's GPUs.
#
#   sbatch experiments/launch/gpu_slurm.sh TASK WORKDIR [--set KEY=VALUE ...]
#
# e.g. sbatch --nodes=4 experiments/launch/gpu_slurm.sh normal /shared/runs/taskbank/normal
#
# Install first, in an environment every node sees (VENV, default ./.venv):
#   python -m pip install 'jax[cuda12]==0.10.2' dist/taskonomy_jax-*.whl
# `--set multihost=True` makes each process call jax.distributed.initialize(), which reads the
# coordinator, process count and rank from Slurm's environment (SLURM_*), so nothing is passed
# by hand. train.batch_size is global and must divide by the GPU count (the paper's 32: up to 4
# nodes of 8 GPUs; more with --set train.batch_size=...); WORKDIR must be on a file system every
# node sees, where orbax writes the checkpoints of all processes. Re-submitting resumes from the latest checkpoint. Extra arguments go to
# `taskonomy train` unchanged. Documentation-grade: not run by the project's tests.
#
#SBATCH --job-name=taskonomy-train
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=48:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail

if (( $# < 2 )); then
  echo "usage: sbatch $0 TASK WORKDIR [--set KEY=VALUE ...]" >&2
  exit 2
fi
task=$1
workdir=$2
shift 2

# shellcheck source=/dev/null
source "${VENV:-.venv}/bin/activate"

srun --ntasks-per-node=1 taskonomy train task_network:paper --task "${task}" \
  --workdir "${workdir}" --set multihost=True --set model.dtype=bfloat16 "$@"
