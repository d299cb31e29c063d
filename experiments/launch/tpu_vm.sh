#!/usr/bin/env bash
# Train one task network at paper size on a Cloud TPU VM slice (e.g. v4-32: 4 workers, 16 chips),
# one `taskonomy train` process per worker, all started at once by `--worker=all`.
#
#   experiments/launch/tpu_vm.sh TPU_NAME ZONE TASK gs://BUCKET/taskbank/TASK [--set KEY=VALUE ...]
#
# e.g. experiments/launch/tpu_vm.sh my-v4-32 us-central2-b normal gs://my-bucket/taskbank/normal
#
# What it does:
#   1. copies the wheel (WHEEL, default dist/taskonomy_jax-*.whl, built with
#      `python -m pip wheel --no-deps -w dist .`) to every worker and installs it with jax[tpu] (the version of requirements/constraints.txt);
#      set SETUP=0 to skip this on a slice that already has it;
#   2. runs `taskonomy train task_network:paper` (the packaged config, installed with the wheel)
#      on every worker with `--set multihost=True`: each process calls
#      jax.distributed.initialize(), which finds the other workers of the slice by itself.
# train.batch_size is global (the paper's 32: divisible by 16 chips); the workdir must be a path
# every worker sees (gs://), where orbax writes the checkpoints of all processes. Re-running the
# script resumes from the latest checkpoint. Extra arguments go to `taskonomy train` unchanged.
# Documentation-grade: not run by the project's tests.
set -euo pipefail

if (( $# < 4 )); then
  echo "usage: $0 TPU_NAME ZONE TASK gs://BUCKET/DIR [--set KEY=VALUE ...]" >&2
  exit 2
fi
tpu_name=$1
zone=$2
task=$3
workdir=$4
shift 4

# The remote command is one string for the workers' shells: quote every piece of it.
extra=""
for arg in "$@"; do
  extra+=" $(printf '%q' "${arg}")"
done

ssh_all() {
  gcloud compute tpus tpu-vm ssh "${tpu_name}" --zone="${zone}" --worker=all --command="$1"
}

if [[ "${SETUP:-1}" == 1 ]]; then
  wheels=(dist/taskonomy_jax-*.whl)
  wheel=${WHEEL:-${wheels[-1]}}
  gcloud compute tpus tpu-vm scp "${wheel}" "${tpu_name}:~/" --zone="${zone}" --worker=all
  ssh_all "python3 -m pip install --upgrade pip && \
python3 -m pip install 'jax[tpu]==0.10.2' ~/$(printf '%q' "$(basename "${wheel}")")"
fi

ssh_all "taskonomy train task_network:paper --task $(printf '%q' "${task}") \
--workdir $(printf '%q' "${workdir}") --set multihost=True --set model.dtype=bfloat16${extra}"
