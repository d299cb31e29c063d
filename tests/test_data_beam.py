"""The real-dataset build on Apache Beam: options from the command line, a multi-process runner,
manual directories at URLs, and a driver that lists but never reads the views."""

import importlib
import json
import logging
import os
import sys

import fsspec
import pytest
import tensorflow_datasets as tfds
from etils import epath
from etils.epath import backend as epath_backend
from fsspec.implementations import memory

from data_builders.taskonomy import taskonomy_dataset_builder as real
from taskonomy_jax import cli
from taskonomy_jax.data import features as features_lib
from taskonomy_jax.data import layout
from tests import data_fixtures
from tests.conftest import REPO_ROOT

beam = pytest.importorskip("apache_beam")

RES = 16
BUILDINGS = {"alpha": (2, 2), "beta": (1, 2)}
MULTI = "--direct_num_workers=2 --direct_running_mode=multi_processing"
WARNING = "Discarding unparseable args"


def _cli_build(manual, data, *extra):
  return cli.main(["data", "build", "taskonomy", "--config", "found", "--resolution", str(RES),
                   "--manual-dir", str(manual), "--data-dir", str(data), *extra])


def _records(data_dir):
  builder = tfds.builder(f"taskonomy/found_{RES}px", data_dir=str(data_dir))
  source = builder.as_data_source(split="train")
  records = {features_lib.record_key(source[i]): source[i] for i in range(len(source))}
  return builder, records


def _same(a, b):
  assert set(a) == set(b)
  for key in a:
    for name in a[key]:
      assert (a[key][name] == b[key][name]).all() if hasattr(a[key][name], "all") else (
          a[key][name] == b[key][name]), (key, name)


def _damage(manual):
  """One view with a corrupt PNG: the workers must skip it and report it as the plain build."""
  path = layout.path_for(manual, "domain", layout.ViewKey("alpha", 1, 0), "rgb")
  path.write_bytes(path.read_bytes()[:40])


def test_multiprocess_runner_from_a_file_url_builds_the_plain_examples(tmp_path, monkeypatch,
                                                                       caplog):
  manual = tmp_path / "manual"
  data_fixtures.write_dataset(manual, "domain", BUILDINGS, RES)
  _damage(manual)
  # The runner's worker processes import the builder from this checkout.
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO_ROOT),
                                                    os.environ.get("PYTHONPATH", "")]))
  # Junk in sys.argv: a PipelineOptions built without flags would parse it and warn.
  monkeypatch.setattr(sys, "argv", ["taskonomy", "--not-a-beam-flag", "x"])
  seen = []
  config = tfds.download.DownloadConfig
  monkeypatch.setattr(tfds.download, "DownloadConfig",
                      lambda **kw: seen.append(kw) or config(**kw))
  assert _cli_build(manual, tmp_path / "plain") == 0
  with caplog.at_level(logging.INFO):
    assert _cli_build(manual.as_uri(), (tmp_path / "beam").as_uri(),
                      "--beam-pipeline-options", f"--runner=DirectRunner {MULTI}") == 0
  # Nothing parsed our command line, and no process of the build (Beam's workers log through
  # the job service into these records) discarded a flag.
  assert WARNING not in caplog.text
  assert "--not-a-beam-flag" not in caplog.text
  # The very options object TFDS ran the pipeline with (it turned type checks off in it).
  options = seen[-1]["beam_options"].get_all_options(drop_default=True)
  assert options == {"runner": "DirectRunner", "direct_num_workers": 2,
                     "direct_running_mode": "multi_processing", "pipeline_type_check": False,
                     "direct_runner_use_stacked_bundle": False}
  assert "beam_runner" not in seen[-1] and seen[-1]["manual_dir"] == str(manual)
  plain, a = _records(tmp_path / "plain")
  beamed, b = _records(tmp_path / "beam")
  assert len(a) == 5 and str(layout.ViewKey("alpha", 1, 0)) not in {str(k) for k in a}
  _same(a, b)
  assert (json.dumps(beamed.info.metadata["skipped"])
          == json.dumps(plain.info.metadata["skipped"]))
  assert beamed.info.metadata["skipped"]["train"]["skipped_by_reason"] == {"corrupt_png": 1}
  assert not list((tmp_path / "beam").rglob("*beam-skipped*"))  # the workers' report is gone


class _Bucket(memory.MemoryFileSystem):
  """An object store in this process's memory, served to epath as gs:// (no network)."""

  protocol = ("gs", "gcs")
  root_marker = ""
  store: dict = {}  # noqa: RUF012 (fsspec's layout)
  pseudo_dirs: list = [""]  # noqa: RUF012


@pytest.fixture
def bucket(monkeypatch):
  """gs://... paths read from memory, through epath's fsspec backend."""
  fsspec.register_implementation("gcs", _Bucket, clobber=True)
  fsspec.register_implementation("gs", _Bucket, clobber=True)
  epath_backend.fsspec_backend._get_filesystem.cache_clear()
  _Bucket.store.clear()
  _Bucket.pseudo_dirs[:] = [""]
  yield _Bucket
  epath_backend.fsspec_backend._get_filesystem.cache_clear()
  for name in ("gs", "gcs"):  # back to the lazy default (gcsfs)
    # fsspec has no unregister; its module (shadowed by the `fsspec.registry` mapping) does.
    importlib.import_module("fsspec.registry")._registry.pop(name, None)


def test_gs_manual_dir_is_listed_by_the_driver_and_read_by_the_workers(tmp_path, bucket,
                                                                        monkeypatch):
  local = tmp_path / "manual"
  data_fixtures.write_dataset(local, "building", BUILDINGS, RES)
  _damage_building = layout.path_for(local, "building", layout.ViewKey("beta", 0, 1), "normal")
  _damage_building.write_bytes(b"not a png")
  for path in local.rglob("*"):
    if path.is_file():
      epath.Path(f"gs://bkt/taskonomy/{path.relative_to(local)}").write_bytes(path.read_bytes())
  opened, phase = [], ["driver"]
  real_open = bucket._open

  def spy_open(self, path, mode="rb", **kw):
    opened.append((phase[0], path))
    return real_open(self, path, mode, **kw)

  monkeypatch.setattr(bucket, "_open", spy_open)
  split_generators = real.Builder._split_generators

  def traced(self, dl_manager):
    out = split_generators(self, dl_manager)
    phase[0] = "pipeline"  # after the driver built the transforms
    return out

  monkeypatch.setattr(real.Builder, "_split_generators", traced)
  builder = real.Builder(
      config=real.TaskonomyConfig(name="gs", split_size="found", resolution=RES, use_beam=True),
      data_dir=str(tmp_path / "data"))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir="gs://bkt/taskonomy",
      beam_options=beam.options.pipeline_options.PipelineOptions(flags=[])))
  assert not [p for where, p in opened if where == "driver"]
  assert len([p for where, p in opened if where == "pipeline"]) >= 5 * 17
  assert builder.info.splits["train"].num_examples == 5
  report = builder.info.metadata["skipped"]["train"]
  assert report["skipped"] == {"beta/point_0_view_1": report["skipped"]["beta/point_0_view_1"]}
  assert report["skipped"]["beta/point_0_view_1"].startswith("corrupt_png:normal: ")
  plain = real.Builder(config=real.TaskonomyConfig(name="local", split_size="found",
                                                   resolution=RES),
                       data_dir=str(tmp_path / "plain"))
  plain.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(local)))
  a = plain.as_data_source(split="train")
  b = builder.as_data_source(split="train")
  _same({features_lib.record_key(a[i]): a[i] for i in range(len(a))},
        {features_lib.record_key(b[i]): b[i] for i in range(len(b))})


@pytest.mark.parametrize(("options", "message"), [
    ("--num_worker=8", "unknown Beam option(s): --num_worker=8 (did you mean --num_workers"),
    ("--direct_num_workers=two", "argument --direct_num_workers: invalid int value: 'two'"),
    ("DataflowRunner", "'DataflowRunner' is not a --flag"),
    ('--temp_location="gs://b', "No closing quotation"),
])
def test_bad_pipeline_options_are_a_clear_error(tmp_path, capsys, options, message):
  manual = tmp_path / "manual"
  data_fixtures.write_dataset(manual, "domain", {"alpha": (1, 1)}, RES)
  assert _cli_build(manual, tmp_path / "data", f"--beam-pipeline-options={options}") == 2
  err = capsys.readouterr().err
  assert message in err and "--beam-pipeline-options" in err and "Traceback" not in err
  assert not (tmp_path / "data").exists()


def test_beam_runner_shorthand_and_a_second_runner(tmp_path, capsys):
  manual = tmp_path / "manual"
  data_fixtures.write_dataset(manual, "domain", {"alpha": (1, 1)}, RES)
  assert _cli_build(manual, tmp_path / "data", "--beam-runner", "direct",
                    "--beam-pipeline-options=--runner=DataflowRunner") == 2
  assert "both name a runner" in capsys.readouterr().err
  assert _cli_build(manual, tmp_path / "data", "--beam-runner", "direct") == 0
  assert _records(tmp_path / "data")[0].info.splits["train"].num_examples == 1
