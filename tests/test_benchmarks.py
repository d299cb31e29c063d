"""The benchmark suite's machinery: table, goals, timings by stage, FLOP counting, projection,
and the CLIs (`python -m benchmarks`, `python -m benchmarks.gpu --tiny`). Speed is never
asserted here; only that the numbers are computed as documented."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import flops, projection, report, suite
from benchmarks.report import Goal, Row

REPO = pathlib.Path(__file__).resolve().parents[1]


# --- report: rows, goals, the table -----------------------------------------------------------

def test_ratio_direction_and_goals():
  rate = Row("pipeline", "samples/s", 300.0, 100.0, goal=Goal("ratio_at_least", 2.0))
  assert rate.ratio == pytest.approx(3.0) and rate.met is True
  time_row = Row("bip", "s", 0.5, 2.0, higher_is_better=False, goal=Goal("ours_at_most", 1.0))
  assert time_row.ratio == pytest.approx(4.0) and time_row.met is True
  slow = Row("bip", "s", 12.0, 6.0, higher_is_better=False, goal=Goal("ours_at_most", 10.0))
  assert slow.ratio == pytest.approx(0.5) and slow.met is False
  assert Row("x", "s", 1.0, goal=Goal("ratio_at_least", 2.0)).met is None  # no baseline
  assert Row("x", "views/s", 40.0, goal=Goal("ours_at_least", 2000 / 60)).met is True
  with pytest.raises(ValueError, match="unknown goal kind"):
    Goal("at_least", 1.0)


def test_table_shape_and_json_round_trip(tmp_path):
  rows = [Row("a | b", "img/s", 2.0, 1.0, baseline_name="torch", goal=Goal("ratio_at_least", 1)),
          Row("c", "s", 5.0, higher_is_better=False, note="from markers"),
          Row("d: FAILED", "", None)]
  md = report.markdown_table(rows).splitlines()
  assert md[0] == "| " + " | ".join(report.COLUMNS) + " |"
  assert len(md) == 2 + len(rows)
  # Every line has exactly the six columns (the "|" in a name is escaped).
  assert all(line.replace("\\|", "").count("|") == len(report.COLUMNS) + 1 for line in md)
  assert "2.00x" in md[2] and "yes" in md[2] and "(torch)" in md[2]
  text = report.text_table(rows).splitlines()
  assert len(text) == 1 + len(rows) and text[0].split()[0] == "benchmark"
  mach = report.machine()
  assert {"cpu", "cores", "load_average", "versions", "device_kind"} <= set(mach)
  paths = report.write(tmp_path, "suite", rows, mach, {"x": 1}, [("Extra", "body")])
  doc = json.loads(pathlib.Path(paths["json"]).read_text())
  assert report.rows_from_json(doc) == rows
  assert doc["rows"][0]["met"] is True and doc["rows"][0]["ratio"] == 2.0
  assert "## Extra" in pathlib.Path(paths["md"]).read_text()


# --- make taxonomy timings by stage -----------------------------------------------------------

def _fake_workdir(tmp_path: pathlib.Path) -> pathlib.Path:
  """A resumed run: `dataset` skipped (its marker holds 12.5 s), two units ran."""
  from taskonomy_jax.transfer import pipeline
  log = [{"stage": "dataset", "unit": "tfds", "ran": False, "seconds": 0.01},
         {"stage": "views", "unit": "train", "ran": True, "seconds": 2.0},
         {"stage": "views", "unit": "test", "ran": True, "seconds": 1.5}]
  marker = tmp_path / "01_dataset" / "tfds"
  marker.mkdir(parents=True)
  (marker / "DONE").write_text(json.dumps({"seconds": 12.5}))
  (marker / "data.json").write_text(json.dumps({"name": "taxonomy_default"}))
  (tmp_path / "timings.json").write_text(json.dumps(log))
  assert pipeline.STAGES[:2] == ("dataset", "views")
  return tmp_path


def test_taxonomy_stage_seconds_reads_markers_of_skipped_units(tmp_path):
  m = suite.taxonomy_stage_seconds(_fake_workdir(tmp_path))
  assert m["stages"]["dataset"] == {"seconds": 12.5, "units": 1, "from_markers": 1}
  assert m["stages"]["views"] == {"seconds": 3.5, "units": 2, "from_markers": 0}
  assert m["total_s"] == pytest.approx(16.0)
  assert m["complete"] is False and m["config"] == "default"
  rows, _ = suite.bench_taxonomy({}, suite.Context(tmp_path, tmp_path))
  assert rows[-1].goal is None and "INCOMPLETE" in rows[-1].benchmark  # no goal on a part run
  with pytest.raises(FileNotFoundError, match="--taxonomy-workdir"):
    suite.taxonomy_stage_seconds(tmp_path / "nothing")


def test_unknown_benchmark_names_are_refused():
  with pytest.raises(ValueError, match="accepted: world, input_pipeline"):
    suite.check_names(["world", "nope"])


# --- FLOP counting: the jaxpr count against XLA's cost analysis -------------------------------

def _taps_brute_force(n_in, n_out, k, stride, pad_lo, lhs_dil, rhs_dil):
  """Counts by loops over outputs and taps: input index i is real if p = i * lhs_dil."""
  count = 0
  for o in range(n_out):
    for t in range(k):
      p = o * stride + t * rhs_dil - pad_lo
      count += any(p == i * lhs_dil for i in range(n_in))
  return count


@pytest.mark.parametrize("layer", [
    nn.Conv(6, (3, 3), padding=((1, 1), (1, 1)), use_bias=False),
    nn.Conv(6, (3, 3), strides=(2, 2), padding="SAME", use_bias=False),
    nn.Conv(8, (3, 3), padding="SAME", feature_group_count=2, kernel_dilation=2,
            use_bias=False),
    nn.Conv(5, (7, 7), strides=(2, 2), padding=((3, 3), (3, 3)), use_bias=False),
    nn.ConvTranspose(6, (3, 3), strides=(2, 2), padding=((2, 1), (2, 1)), use_bias=False),
    nn.Dense(5, use_bias=False),
], ids=["conv3x3", "conv_stride2", "grouped_dilated", "conv7x7_stride2", "deconv", "dense"])
def test_counted_flops_equal_xla_on_one_layer(layer):
  x = jnp.ones((2, 8, 8, 4))
  v = layer.init(jax.random.key(0), x)
  f = lambda v, x: layer.apply(v, x)  # noqa: E731
  assert flops.counted_flops(f, v, x) == flops.xla_flops(jax.jit(f).lower(v, x).compile())


def test_counted_flops_known_answer():
  # 3x3 conv, stride 1, pad 1 on 8x8x4 -> 8x8x6, batch 2: per axis 8 outputs x 3 taps minus the
  # 2 that fall on padding = 22 real (output, tap) pairs.
  assert _taps_brute_force(8, 8, 3, 1, 1, 1, 1) == 22
  conv = nn.Conv(6, (3, 3), padding=((1, 1), (1, 1)), use_bias=False)
  x = jnp.ones((2, 8, 8, 4))
  v = conv.init(jax.random.key(0), x)
  assert flops.counted_flops(lambda v, x: conv.apply(v, x), v, x) == 2 * 2 * 6 * 4 * 22 * 22
  # The stride-2 transposed conv: brute force over the dilated input agrees with the formula.
  for args in [(8, 16, 3, 1, 2, 2, 1), (5, 9, 3, 2, 1, 1, 2), (16, 16, 1, 1, 0, 1, 1)]:
    assert flops._valid_taps(*args) == _taps_brute_force(*args)


def test_counted_flops_of_a_tiny_network_forward_match_xla():
  """The whole forward pass of a narrow task network with the paper's layout (pixel decoder):
  XLA counts the same convolutions plus elementwise work (BatchNorm, activations)."""
  from taskonomy_jax import models
  model = models.build("normal", {"width": 4, "blocks": (1, 1, 1, 1),
                                  "decoder_width_multiplier": 1 / 64})
  x = jnp.zeros((1, 32, 32, 3))
  v = jax.eval_shape(model.init, jax.random.key(0), x)
  v = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), v)
  f = lambda v, x: model.apply(v, x)  # noqa: E731
  counted = flops.counted_flops(f, v, x)
  xla = flops.xla_flops(jax.jit(f).lower(v, x).compile())
  assert counted > 0
  assert counted <= xla <= 1.6 * counted


def test_peak_table_and_mfu():
  assert flops.peak_flops("NVIDIA H100 80GB HBM3") == 989e12
  assert flops.peak_flops("NVIDIA H100 PCIe") == 756e12
  assert flops.peak_flops("NVIDIA H200") == 989e12
  assert flops.peak_flops("TPU v5 lite") == 197e12
  assert flops.peak_flops("cpu") is None
  assert flops.mfu(989e12 * 0.5, 1.0, "NVIDIA H200") == pytest.approx(0.5)
  assert flops.mfu(1e12, 0.1, "cpu") is None


# --- projection arithmetic --------------------------------------------------------------------

def _rates(**kw) -> projection.Rates:
  base = {"train_img_per_s": 4.0, "train_side": 128, "world_views_per_s": 32.0,
          "world_side": 64, "pipeline_samples_per_s": 160.0, "pipeline_side": 64,
          "flops": {"network_step": 60.0, "readout_step": 20.0, "encoder_forward": 15.0},
          "bip_sweep_s": 2.0}
  return projection.Rates(**{**base, **kw})


def test_projection_arithmetic():
  scale = projection.PaperScale(tasks=2, transfers=10, views=1000, resolution=256,
                                taskbank_steps=100, taskbank_batch=4, transfer_steps=50,
                                transfer_batch=2, transfer_images=30)
  p = projection.project(_rates(), scale)
  c = {x["name"].split(":")[0].split(" (")[0]: x for x in p["components"]}
  # 128 -> 256 is 4x the pixels: 4 img/s becomes 1 img/s.
  assert c["task bank"]["rate_per_s"] == pytest.approx(1.0)
  assert c["task bank"]["seconds"] == pytest.approx(2 * 100 * 4 / 1.0)
  # 64 -> 256 is 16x: 32 views/s -> 2; 1000 views -> 500 s.
  assert c["render the views"]["seconds"] == pytest.approx(500.0)
  # Readouts cost 20/60 of a network step: 3 img/s; 10 x 50 x 2 images.
  assert c["transfers"]["rate_per_s"] == pytest.approx(3.0)
  assert c["transfers"]["seconds"] == pytest.approx(1000 / 3.0)
  # Encoder forward 15/60: 4 img/s; 2 tasks x 30 images.
  assert c["representations of the transfer set"]["seconds"] == pytest.approx(60 / 4.0)
  assert c["BIP"]["seconds"] == 2.0
  # The pipeline (160/16 = 10 samples/s for 800 images) is beside training, not in the total.
  pipe = c["input pipeline for the task bank"]
  assert pipe["seconds"] == pytest.approx(80.0) and not pipe["critical_path"]
  assert p["total_s"] == pytest.approx(800 + 500 + 1000 / 3 + 15 + 2)
  assert "| **total (critical path)** |" in projection.markdown(p)


def test_projection_leaves_out_what_was_not_measured():
  p = projection.project(_rates(world_views_per_s=None, bip_sweep_s=None),
                         projection.PaperScale())
  assert set(p["missing"]) == {"render the views (synthetic world)",
                               "BIP: every budget, all tasks, order <= 4"}
  assert "Not measured" in projection.markdown(p)


def test_paper_scale_comes_from_the_paper_config():
  from taskonomy_jax import config_files
  c = config_files.load_config(f"{projection.PAPER_CONFIG}:paper")
  s = projection.PaperScale.from_config()
  assert (s.taskbank_steps, s.taskbank_batch) == (c.taskbank.num_steps, c.taskbank.batch_size)
  assert (s.transfer_steps, s.transfer_batch) == (c.transfer.num_steps, c.transfer.batch_size)
  assert s.tasks == 26 and s.resolution == 256


def test_rates_from_suite_details_and_gpu():
  details = {
      "train_step": {"details": {"rows": [{"size": 64, "ours": 1.0}, {"size": 128, "ours": 0.4}],
                                 "paper_flops": {"network_step": 3.0, "readout_step": 1.0,
                                                 "encoder_forward": 1.0}}},
      "world": {"error": "boom"},
      "input_pipeline": {"details": {"resolution": 64, "rows": [{"ours": 10.0},
                                                                {"ours": 30.0}]}},
      "bip": {"details": {"published": {"order": 4, "ours_sweep": 1.5}}}}
  r = projection.rates_from_suite(details)
  assert (r.train_side, r.train_img_per_s) == (128, 0.4)   # the largest size measured
  assert r.world_views_per_s is None and r.pipeline_samples_per_s == 30.0
  assert r.bip_sweep_s == 1.5
  g = projection.with_gpu(r, {"device_kind": "NVIDIA H200",
                              "train_step": {"img_per_s": 900.0, "resolution": 256,
                                             "dtype": "bfloat16"}})
  assert (g.train_img_per_s, g.train_side) == (900.0, 256) and "H200" in g.where
  with pytest.raises(projection.MissingMeasurement):
    projection.rates_from_suite({"world": details["world"]})


# --- the command lines ------------------------------------------------------------------------

def _run(args, env_extra=None, timeout=900):
  env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
  return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, timeout=timeout,
                        capture_output=True, text=True, check=False)


def test_suite_cli_runs_and_writes_the_table(tmp_path, paper_results_dir):
  work = _fake_workdir(tmp_path / "tax")
  out = tmp_path / "out"
  proc = _run(["benchmarks", "--size", "tiny", "--only", "bip", "taxonomy",
               "--taxonomy-workdir", str(work), "--out", str(out)],
              {"TASKONOMY_PAPER_RESULTS": str(paper_results_dir)})
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  doc = json.loads((out / "suite.json").read_text())
  names = [r["benchmark"] for r in doc["rows"]]
  assert any(n.startswith("BIP published") and "single solve" in n for n in names)
  assert any("stage dataset" in n for n in names)
  bip_single = next(r for r in doc["rows"] if "single solve" in r["benchmark"])
  assert bip_single["ours"] > 0 and bip_single["baseline"] > 0 and bip_single["ratio"] > 0
  assert doc["machine"]["cores"] == os.cpu_count() and doc["machine"]["size"] == "tiny"
  assert "| benchmark | ours | baseline | ratio | goal | met? |" in (out / "suite.md").read_text()
  assert "benchmark" in proc.stdout and "met?" in proc.stdout  # the table is printed

  bad = _run(["benchmarks", "--only", "nope", "--out", str(out)])
  assert bad.returncode != 0 and "accepted: world" in bad.stderr


def test_gpu_script_runs_tiny_on_cpu(tmp_path):
  proc = _run(["benchmarks.gpu", "--tiny", "--out", str(tmp_path)],
              {"XLA_FLAGS": "--xla_backend_optimization_level=0"})
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  doc = json.loads((tmp_path / "gpu.json").read_text())
  t = doc["train_step"]
  assert t["img_per_s"] > 0 and t["dtype"] == "bfloat16" and np.isfinite(t["loss"])
  # XLA counts the same convolutions/matmuls plus elementwise work and the optimizer.
  assert 0 < t["counted_flops"] <= t["xla_flops"] <= 3 * t["counted_flops"]
  assert t["mfu"] is None and t["peak_flops"] is None  # a CPU has no entry in the peak table
  assert set(doc["transfers"]["transfers_per_hour"]) == {"batched", "sequential_fresh",
                                                          "sequential_reused"}
  assert doc["input_pipeline"]["samples_per_s"] > 0
  assert "MFU" in (tmp_path / "gpu.md").read_text()


def test_gpu_script_parts_are_checked_and_tabled_alone(tmp_path):
  from benchmarks import gpu, report
  with pytest.raises(ValueError, match=r"unknown parts \['bogus'\]; accepted: .*'train_step'"):
    gpu.run("tiny", tmp_path, parts=("train_step", "bogus"))
  with pytest.raises(ValueError, match="one or more"):
    gpu.run("tiny", tmp_path, parts=())
  assert not (tmp_path / "gpu.json").exists()  # refused before measuring anything
  doc = {"config": "paper", "seconds": 3.0, "machine": report.machine(),
         "transfers": {"readouts": 8, "ratio_vs_fresh": 30.0, "ratio_vs_reused": 2.5,
                       "transfers_per_hour": {"batched": 300.0, "sequential_fresh": 10.0,
                                              "sequential_reused": 120.0}}}
  text = gpu.markdown(doc)
  assert "| transfers/hour, K=8 stacked / fresh / reused | 300 / 10 / 120 |" in text
  assert "30.00x / 2.50x" in text and "MFU" not in text and "input pipeline" not in text


def test_project_command_on_a_suite_json(tmp_path, capsys):
  from benchmarks import __main__ as cli
  details = {"train_step": {"details": {"rows": [{"size": 256, "ours": 0.1}], "where": "cpu",
                                        "paper_flops": {"network_step": 3.0,
                                                        "readout_step": 1.0,
                                                        "encoder_forward": 1.0}}}}
  (tmp_path / "suite.json").write_text(json.dumps({"details": details}))
  gpu = {"device_kind": "NVIDIA H100 80GB HBM3",
         "train_step": {"img_per_s": 1000.0, "resolution": 256, "dtype": "bfloat16"}}
  (tmp_path / "gpu.json").write_text(json.dumps(gpu))
  assert cli.main(["project", str(tmp_path / "suite.json")]) == 0
  cpu_out = capsys.readouterr().out
  assert cli.main(["project", str(tmp_path / "suite.json"), "--gpu",
                   str(tmp_path / "gpu.json")]) == 0
  gpu_out = capsys.readouterr().out
  s = projection.PaperScale.from_config()
  bank_s = s.tasks * s.taskbank_steps * s.taskbank_batch
  # The task-bank row: images / rate, at 0.1 img/s here and 1000 img/s on the GPU.
  assert f"{bank_s / 0.1 / 86400:,.0f} days" in cpu_out
  assert f"{bank_s / 1000 / 3600:.1f} h" in gpu_out and "H100" in gpu_out


def test_frozen_decoder_benchmark_times_both_variants():
  from benchmarks import frozen_decoder_readouts
  result = frozen_decoder_readouts.measure(readouts=2, num_targets=1, batch=1, steps=1,
                                           repeats=1)
  assert set(result) == {"grouped", "per_readout", "grouped_compile", "per_readout_compile"}
  assert all(v > 0 for v in result.values())


def test_metric_embedding_grid_benchmark_compares_equal_computations():
  from benchmarks import metric_embedding_grid
  result = metric_embedding_grid.measure(readouts=2, batch=2, repeats=1)
  assert result["equal_loss"] and result["max_grad_diff"] == 0.0
  assert result["gather"] > 0 and result["slice"] > 0
  step = metric_embedding_grid.measure_step(readouts=2, batch=2, repeats=1)
  assert step["max_loss_diff"] < 1e-6 and step["max_param_diff"] < 1e-5
  assert step["full"] > 0 and step["loss_pixels"] > 0
