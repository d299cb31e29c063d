"""A finished taxonomy run as predictors: the run's task bank and the transfer readouts give
exactly the outputs the pipeline scored (its cached per-example held-out losses are recomputed
from the predictors' outputs), and `taskonomy visualize --transfers` writes their video.

The round-trip tests need a finished `:tiny` run of `taskonomy taxonomy` (~5 min on the loaded
2-core build machine, compile time): a module fixture runs it, so they are marked `slow`. To
reuse a finished tiny run while developing, set TASKONOMY_TINY_TAXONOMY_RUN to its workdir.
"""

from __future__ import annotations

import json
import os
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

from taskonomy_jax import cli, config_files, tasks
from taskonomy_jax.train import checkpoint
from taskonomy_jax.transfer import predictor, readout, stages

TINY = "taxonomy:tiny"


# --- without a run ---------------------------------------------------------------------------

def test_transfer_names_parse_with_aliases_and_sorted_sources():
  t = predictor.Transfer.parse(" normal <- reshading+segmentsemantic ")
  assert t == predictor.Transfer("normal", ("reshading", "segment_semantic"))
  assert str(t) == "normal<-reshading+segment_semantic"
  assert predictor.Transfer.parse("normal<-normal").own_network
  for bad in ("normal", "normal<-", "<-depth_zbuffer", "normal<-+"):
    with pytest.raises(ValueError, match="target<-source"):
      predictor.Transfer.parse(bad)
  with pytest.raises(tasks.UnknownTaskError):
    predictor.Transfer.parse("normal<-telepathy")


def test_run_config_comes_from_the_argument_or_config_json(tmp_path):
  with pytest.raises(FileNotFoundError, match="is not a folder"):
    predictor.load_run_config(tmp_path / "nothing")
  with pytest.raises(FileNotFoundError, match=r"no config\.json; give the run's config"):
    predictor.load_run_config(tmp_path)
  with pytest.raises(ValueError, match="need the config file"):
    predictor.load_run_config(tmp_path, None, ["transfer.num_steps=3"])
  from_file = predictor.load_run_config(tmp_path, TINY, ["transfer.max_order=3"])
  assert from_file.transfer.max_order == 3 and list(from_file.targets) == [
      "depth_zbuffer", "edge_texture"]
  (tmp_path / predictor.CONFIG_FILE).write_text(json.dumps(from_file.to_dict()))
  back = predictor.load_run_config(tmp_path)
  assert back.to_dict() == json.loads(json.dumps(from_file.to_dict()))


def test_visualize_transfer_options_need_a_run(tmp_path):
  out = str(tmp_path / "v.mp4")
  assert cli.main(["visualize", "--walk", "0", "--transfer", "normal<-reshading",
                   "--out", out]) == 2
  assert cli.main(["visualize", "--walk", "0", "--transfers", str(tmp_path / "none"),
                   "--out", out]) == 1  # not a run: a runtime failure, not bad syntax
  assert not (tmp_path / "v.mp4").exists()


# --- on a finished tiny run (slow) -----------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[pathlib.Path, object]:
  from taskonomy_jax.transfer import pipeline

  config = config_files.load_config(TINY)
  existing = os.environ.get("TASKONOMY_TINY_TAXONOMY_RUN")
  if existing:
    workdir = pathlib.Path(existing)
  else:
    workdir = tmp_path_factory.mktemp("taxonomy") / "tiny"
    pipeline.run_pipeline(config, workdir)
  assert stages.is_done(workdir / "08_taxonomy" / "out"), f"{workdir} is not a finished run"
  return workdir, config


def _cached_losses(run, transfer: predictor.Transfer) -> np.ndarray:
  """The pipeline's own per-example test losses of a transfer (or of a task network)."""
  if transfer.own_network:
    return np.load(run.unit_of("taskbank", transfer.target) / f"{transfer.target}.self_losses.npy")
  stage, unit, k = predictor._find_readout(run, transfer)
  return np.load(run.stage_dir(stage) / unit / "losses.npy")[k]


def _losses(target: str, outputs: np.ndarray, views) -> np.ndarray:
  return np.asarray(readout.per_example_losses(
      tasks.get(target), jnp.asarray(outputs),
      {"targets": jnp.asarray(views.target(target)), "mask": jnp.asarray(views.mask(target))}))


@pytest.mark.slow
def test_transfer_readouts_reproduce_the_pipelines_held_out_losses(tiny_run):
  workdir, config = tiny_run
  run = predictor.open_run(workdir, config)
  test = run.views("test")
  chosen = predictor.TransferPredictor.load(workdir, config=config)
  served = json.loads((workdir / "08_taxonomy/out/taxonomy.json").read_text())["served"]
  assert [str(t) for t in chosen.transfers] == [
      f"{s['target']}<-{'+'.join(s['sources'])}" for s in served]
  # every first- and higher-order readout the run trained into depth_zbuffer (random included)
  explicit = [f"depth_zbuffer<-{s}" for s in ("edge_texture", "random", "edge_texture+random")]
  checked = 0
  for tp in (chosen, *(predictor.TransferPredictor.load(workdir, [t], config) for t in explicit)):
    outputs = tp.batch(np.asarray(test.rgb))
    for t in tp.transfers:
      np.testing.assert_allclose(_losses(t.target, outputs[t.target], test),
                                 _cached_losses(run, t), rtol=1e-5, atol=1e-6, err_msg=str(t))
      checked += 1
    one = tp(np.asarray(test.rgb[1]))  # the Predictor interface: one image, no batch axis
    for name, out in one.items():
      np.testing.assert_allclose(out, outputs[name][1], rtol=1e-5, atol=1e-6)
  assert checked == len(served) + len(explicit)
  # First-order readouts read one representation; orders 2+ read max_order of them, zero-padded
  # (pipeline.input_channels): the stacked first conv's (K, 3, 3, C_in, C_out) kernel says so.
  for stage, orders in (("transfers1", 1), ("transfers_high", config.transfer.max_order)):
    unit = run.unit_of(stage, "depth_zbuffer").name
    kernel = checkpoint.load_variables(str(run.ckpt / stage / unit))["params"]["conv0"]["kernel"]
    assert np.shape(kernel)[-2] == orders * config.model.rep_channels, stage
  with pytest.raises(ValueError, match=r"no trained readout for edge_texture<-edge_texture\+"):
    predictor.TransferPredictor.load(workdir, ["edge_texture<-edge_texture+random"], config)
  with pytest.raises(ValueError, match="one transfer per target"):
    predictor.TransferPredictor.load(workdir, ["edge_texture<-random",
                                               "edge_texture<-depth_zbuffer"], config)
  wrong = config_files.load_config(TINY)  # a config other than the run's: refused, not misread
  wrong.readout.readout_channels = 16
  with pytest.raises(ValueError, match=r"readout edge_texture<-depth_zbuffer: checkpoint "
                                       r"parameter .* has shape"):
    predictor.TransferPredictor.load(workdir, ["edge_texture<-depth_zbuffer"], wrong)


@pytest.mark.slow
def test_readouts_converge_on_the_held_out_losses_the_tournaments_score(tiny_run):
  from taskonomy_jax.transfer import pipeline

  workdir, config = tiny_run
  run = predictor.open_run(workdir, config)
  checked = 0
  for stage in ("transfers1", "transfers_high"):
    for path in sorted(run.stage_dir(stage).glob("*/plateau.json")):
      plateau = json.loads(path.read_text())
      members = pipeline.load_members(path.parent)
      losses = np.load(path.parent / "losses.npy")  # (K, test views) in the targets' units
      for k, (target, _) in enumerate(members):
        transform = pipeline.residual(run, target)
        factor = 1.0 if transform is None else readout.loss_factor(tasks.get(target),
                                                                   transform[1])
        np.testing.assert_allclose(plateau["loss_end"][k] * factor, losses[k].mean(),
                                   rtol=1e-5, err_msg=f"{path}: readout {k}")
        checked += 1
      for prefix in ("", "train_"):
        assert plateau[f"{prefix}plateaued"] == pipeline.plateau_flags(
            np.asarray(plateau[f"{prefix}loss_mid"]), np.asarray(plateau[f"{prefix}loss_end"]))
  converged = pipeline.converged_readouts(run)
  assert checked == len(converged["plateaued"]) == len(converged["train_plateaued"]) > 0
  report = json.loads((workdir / "08_taxonomy/out" / pipeline.REPORT).read_text())
  gate = report["gates"]["readouts_converged"]
  on_train = sum(converged["train_plateaued"].values())
  assert gate["train_loss_plateaued"] == (f"{on_train}/{checked} readouts' loss on "
                                          "transfer-training probe views plateaued")


@pytest.mark.slow
def test_the_runs_bank_reproduces_the_task_networks(tiny_run):
  from taskonomy_jax.taskbank import bank

  workdir, config = tiny_run
  run = predictor.open_run(workdir, config)
  test = run.views("test")
  loaded = bank.TaskBank.load(str(run.bank_dir))
  assert loaded.task_names == sorted(run.bank, key=[t.name for t in tasks.all_tasks()].index)
  assert loaded.resolution == config.data.resolution
  for t in run.targets:  # the task networks' outputs give the pipeline's `self` losses
    outputs = loaded.batch_apply(t)(np.asarray(test.rgb))
    np.testing.assert_allclose(_losses(t, outputs, test),
                               _cached_losses(run, predictor.Transfer(t, (t,))),
                               rtol=1e-5, atol=1e-6, err_msg=t)
  # random projection gives the representation the transfers read
  rep = loaded.batch_apply("random")(np.asarray(test.rgb))
  np.testing.assert_allclose(rep, run.rep("random", "test"), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_transfer_video_from_a_walk_through(tiny_run, tmp_path):
  import imageio.v3 as iio

  from taskonomy_jax.taskbank import video

  workdir, config = tiny_run
  bank_dir = predictor.open_run(workdir, config).bank_dir
  served = json.loads((workdir / "08_taxonomy/out/taxonomy.json").read_text())["served"]
  targets = [s["target"] for s in served]
  walk = ["--walk", "3", "--frames", "4", "--panel", "96"]
  transfers, networks = tmp_path / "transfers.mp4", tmp_path / "networks.mp4"
  assert cli.main(["visualize", *walk, "--transfers", str(workdir), "--config", TINY,
                   "--out", str(transfers)]) == 0
  assert cli.main(["visualize", *walk, "--bank", str(bank_dir), "--tasks", ",".join(targets),
                   "--out", str(networks)]) == 0
  a = [np.asarray(f, np.float32) for f in iio.imiter(transfers)]
  b = [np.asarray(f, np.float32) for f in iio.imiter(networks)]
  # 'edge_texture <- depth_zbuffer' and 'depth_zbuffer (own)' take two title lines at 96 px
  assert len(a) == len(b) == 4
  assert a[0].shape == (96 + 2 * video.LABEL_HEIGHT, 96 * (1 + len(targets)), 3)
  assert b[0].shape == (96 + video.LABEL_HEIGHT, 96 * (1 + len(targets)), 3)
  pa = [f[2 * video.LABEL_HEIGHT:] for f in a]
  pb = [f[video.LABEL_HEIGHT:] for f in b]
  # H.264 makes equal panels differ by ~2-3 grey levels on average (measured 1.8-3.2): the
  # input and own-network panels stay below 5, the readout's panel differed by ~10.7
  for fa, fb in zip(pa, pb, strict=True):
    assert np.abs(fa[:, :96] - fb[:, :96]).mean() < 5  # the same input frame
    for k, s in enumerate(served, start=1):
      diff = np.abs(fa[:, 96 * k:96 * (k + 1)] - fb[:, 96 * k:96 * (k + 1)]).mean()
      if s["served_by"] == "transfer":  # a readout, not the target's own network
        assert diff > 8, s
      else:
        assert diff < 5, s


@pytest.mark.slow
def test_probe_scripts_rebuild_the_runs_random_projection_and_spread(tiny_run, tmp_path):
  """experiments/readout_probe.py and transfer_spread.py on the run: the bank's own blocks
  give back the run's random projection; the spread's ratios are the cached losses'; a probe
  writes nothing into the run."""
  from experiments import readout_probe, transfer_spread
  from taskonomy_jax.transfer import pipeline

  workdir, config = tiny_run
  run = predictor.open_run(workdir, config)
  reps = readout_probe.random_encoder_reps(run, tuple(run.config.model.blocks))
  for split in readout_probe.SPLITS:
    np.testing.assert_allclose(reps[split], run.rep("random", split), rtol=1e-6, atol=1e-6)
  deeper = readout_probe.random_encoder_reps(run, (1, 1, 1, 1))
  assert deeper["test"].shape == reps["test"].shape
  assert not np.allclose(deeper["test"], reps["test"])

  rows = transfer_spread.spread_rows(run)
  assert len(rows) == 2 + len(run.targets)
  for row, (target, tl) in zip(rows[2:], pipeline.target_losses_of_run(run).items(),
                               strict=True):
    median = np.load(run.unit_of("taskbank", target) / f"{target}.median_losses.npy").mean()
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == target
    assert float(cells[1]) == pytest.approx(tl.self_losses.mean() / median, abs=6e-4)
    k = tl.candidates.index(("random",))
    assert float(cells[3]) == pytest.approx(tl.losses[k].mean() / median, abs=6e-4)

  def files() -> list[pathlib.Path]:  # the run's, not jax's compilation cache in it
    return sorted(p.relative_to(workdir) for p in workdir.rglob("*")
                  if p.relative_to(workdir).parts[0] != "jax_cache")

  before = files()
  probe_run = readout_probe.scratch_run(run, tmp_path)
  ratios = readout_probe.probe(probe_run, ["depth_zbuffer"], ["edge_texture", "random"], {})
  assert set(ratios["depth_zbuffer"]) == {"edge_texture", "random"}
  assert all(np.isfinite(list(ratios["depth_zbuffer"].values())))
  assert files() == before
