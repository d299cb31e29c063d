"""Reading checkpoints: a path that holds none is a clear error and leaves nothing behind."""

import re

import numpy as np
import pytest

from taskonomy_jax.train import checkpoint


def _variables():
  return {"params": {"encoder": {"w": np.zeros((2, 3), np.float32)}},
          "batch_stats": {"encoder": {"mean": np.zeros(3, np.float32)}}}


def test_restore_encoder_from_a_missing_path_creates_nothing(tmp_path):
  missing = tmp_path / "runs" / "autoencoding"
  with pytest.raises(FileNotFoundError, match=re.escape(f"no checkpoint at {missing}: no such folder")):
    checkpoint.restore_encoder(_variables(), str(missing))
  assert not (tmp_path / "runs").exists()
  # A folder without checkpoints: refused, and left as it was.
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="no checkpoint found under"):
    checkpoint.restore_encoder(_variables(), str(tmp_path / "empty"))
  assert list((tmp_path / "empty").iterdir()) == []


def test_load_variables_names_the_saved_steps(tmp_path):
  mngr = checkpoint.manager(str(tmp_path), save_every=1, keep=2)
  state = {**_variables(), "step": np.int32(3)}
  checkpoint.save(mngr, 3, state, None, force=True)
  mngr.wait_until_finished()
  mngr.close()
  loaded = checkpoint.load_variables(str(tmp_path))
  np.testing.assert_array_equal(loaded["params"]["encoder"]["w"], np.zeros((2, 3)))
  restored = checkpoint.restore_encoder(
      {"params": {"encoder": {"w": np.ones((2, 3), np.float32)}, "decoder": {}},
       "batch_stats": {"encoder": {"mean": np.ones(3, np.float32)}}}, str(tmp_path))
  assert not restored["params"]["encoder"]["w"].any() and "decoder" in restored["params"]
  with pytest.raises(FileNotFoundError, match=r"no checkpoint of step 5 under .*; steps saved: 3"):
    checkpoint.load_variables(str(tmp_path), step=5)
  assert not (tmp_path / "checkpoints" / "5").exists()


def test_save_variables_writes_what_load_variables_reads(tmp_path):
  variables = {"params": {"encoder": {"w": np.full((2, 3), 2.0, np.float32)}},
               "batch_stats": {"encoder": {"mean": np.ones(3, np.float32)}}}
  path = checkpoint.save_variables(str(tmp_path), variables)
  assert path == str(tmp_path / checkpoint.CHECKPOINT_DIR / "0")
  loaded = checkpoint.load_variables(str(tmp_path))
  np.testing.assert_array_equal(loaded["params"]["encoder"]["w"], variables["params"]["encoder"]["w"])
  np.testing.assert_array_equal(loaded["batch_stats"]["encoder"]["mean"], np.ones(3))
