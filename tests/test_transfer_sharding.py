"""Stacked readouts sharded over the stacking axis equal the unsharded ones.

The worker (tests/transfer_shard_worker.py) runs in its own process on 8 simulated CPU devices
(`--xla_force_host_platform_device_count` must be set before jax starts): 12 readouts, padded
to 16, two per device, against the same 12 trained on one device.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def facts(tmp_path_factory):
  env = dict(os.environ)
  env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = str(REPO)
  out = subprocess.run([sys.executable, str(REPO / "tests" / "transfer_shard_worker.py"),
                        "--workdir", str(tmp_path_factory.mktemp("shard")), "--k", "12"],
                       env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads([x for x in out.stdout.splitlines() if x.startswith("FACTS ")][-1][6:])


def test_each_device_holds_its_share_of_the_readouts(facts):
  assert facts["devices"] == 8
  # 12 readouts padded to 16: every (K, ...) leaf split into 8 shards of 2 whole readouts.
  assert facts["saved_k"] == [16] and facts["opt_leaf_shape"][0] == 16
  assert facts["opt_leaf_shard_shape"][0] == 2
  assert facts["opt_leaf_shard_rows"] == [2] * 8 and facts["opt_leaf_devices"] == 8
  # The padding is dropped on the way out.
  assert facts["returned_k"] == [12] and facts["losses_shape"] == [12, 16]


def test_sharded_readouts_train_as_unsharded_ones(facts):
  # No cross-device reduction enters a readout's own gradient (the batch is replicated and the
  # copies are disjoint), so the two agree to float rounding (bitwise on the CPUs tried).
  assert facts["max_param_diff"] <= 1e-5 * facts["param_scale"], facts
  assert facts["finite"]
