"""TFDS builder for the real Taskonomy dataset (Zamir et al., CVPR 2018), read from --manual_dir.

    taskonomy data build taskonomy --manual-dir /data/taskonomy --config tiny_rgb_depth_normal
    # same as `tfds build data_builders/taskonomy --manual_dir=... --config=...`, which needs TF

One example is one view: every requested domain in its on-disk integer encoding plus the view's
point_info (see `taskonomy_jax/data/features.py`). Both released layouts are accepted and detected
(`taskonomy_jax/data/layout.py`). Views with a missing domain file, a corrupt PNG/.npy, a malformed
point_info JSON or a wrong image size are skipped, and every skipped view is listed with its reason
in the dataset's metadata (`info.metadata["skipped"][split]`) and logged, as are the files of the
scanned folders that are no view's file (`...["ignored"]`: stray files, names that are not
UTF-8); TFDS writes to a temporary folder and renames it only at the end, so a failed build leaves
nothing behind.
For the multi-million-view build, set `use_beam=True` in the config and pass Beam options
(`DownloadConfig(beam_options=data_builders.beam_options.pipeline_options([...]))`, or
`taskonomy data build taskonomy --beam-pipeline-options "--runner=DataflowRunner ..."`). The
manual directory may then be any path `etils.epath` reads (gs://, s3://, a file:// URL): the
driver only lists it, and the workers read and check each view (`layout.read_checked_view`),
their skips joining the same report through a small JSON file per split that the pipeline writes
into the (temporary) dataset folder and the driver reads back when the pipeline has run. The
plain and Beam paths produce the same examples and the same report.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from typing import Any

import tensorflow_datasets as tfds
from etils import epath

from data_builders.taskonomy import splits as splits_lib
from taskonomy_jax import files as files_lib
from taskonomy_jax.data import features as features_lib
from taskonomy_jax.data import layout as layout_lib

_DESCRIPTION = """
Taskonomy: 4.6M indoor views of ~540 buildings, each annotated for every task of the Taskonomy
task dictionary (depth, surface normals, curvature, edges, keypoints, segmentations, scene and
object classes, camera pose metadata). Built from the files the user downloaded (manual_dir).
"""

_HOMEPAGE = "http://taskonomy.stanford.edu/"
SPLIT_NAMES = {"train": "train", "validation": "validation", "test": "test"}
# The Beam path's per-split file of the views its workers skipped (view -> reason), written in
# the temporary dataset folder and removed once read back.
_SKIPPED_FILE = "taskonomy-beam-skipped-{split}.json"


@dataclasses.dataclass(eq=False)
class TaskonomyConfig(tfds.core.BuilderConfig):
  """A split size and a domain subset.

  Attributes:
    split_size: `tiny`, `medium`, `full` or `fullplus` (the public building lists), `custom`
      with `buildings` given, or `found`: every building in the manual directory, as `train`
      (a partial download, or files exported from the synthetic world).
    buildings: `custom` only: {"train": [...], "validation": [...], "test": [...]}.
    domains: the domains to store (point_info is always stored).
    resolution: image side in pixels (512 for the released `rgb`, etc.).
    use_beam: generate with Apache Beam (pip install taskonomy-jax[beam]).
  """

  split_size: str = "tiny"
  buildings: dict[str, tuple[str, ...]] | None = None
  domains: tuple[str, ...] = features_lib.ALL_DOMAINS
  resolution: int = 512
  use_beam: bool = False

  def building_lists(self, found: Sequence[str] = ()) -> dict[str, tuple[str, ...]]:
    """Split name -> buildings; `found` (the buildings present) serves split_size='found'."""
    if self.split_size == "found":
      return {"train": tuple(found)}
    if self.split_size == "custom":
      if not self.buildings:
        raise ValueError("split_size='custom' needs buildings={'train': [...], ...}")
      unknown = set(self.buildings) - set(SPLIT_NAMES)
      if unknown:
        raise ValueError(f"unknown split names {sorted(unknown)}; accepted: "
                         f"{', '.join(SPLIT_NAMES)}")
      return {k: tuple(v) for k, v in self.buildings.items()}
    if self.split_size not in splits_lib.SPLITS:
      raise ValueError(f"unknown split size {self.split_size!r}; accepted: "
                       f"{', '.join(splits_lib.SPLITS)}, custom, found")
    return splits_lib.SPLITS[self.split_size]


def _configs() -> list[TaskonomyConfig]:
  out = []
  for size in splits_lib.SPLITS:
    for subset, domains in features_lib.DOMAIN_SUBSETS.items():
      name = size if subset == "all" else f"{size}_{subset}"
      out.append(TaskonomyConfig(
          name=name, split_size=size, domains=domains,
          description=f"{size} split, domains: {', '.join(domains)}"))
  out.append(TaskonomyConfig(name="found", split_size="found",
                             description="every building in manual_dir, as train"))
  return out


class Builder(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for the real Taskonomy dataset."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}  # noqa: RUF012 (TFDS reads it from the class)
  BUILDER_CONFIGS = _configs()
  DEFAULT_CONFIG_NAME = "tiny_rgb_depth_normal"
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download the dataset with the omnidata tool (the dataset README's recommended way):

      pip install omnidata-tools
      omnitools.download rgb depth_zbuffer normal point_info --components taskonomy \\
          --subset tiny --dest /data/taskonomy --agree

  and pass `--manual_dir=/data/taskonomy`. Both layouts are accepted: the omnidata one
  ({domain}/{building}/point_{p}_view_{v}_domain_{domain}.png) and the original release's
  ({building}/{domain}/..., point_info in {building}/points/..._domain_fixatedpose.json).
  """

  def __init__(self, **kwargs: Any):
    # array_record gives `tfds.data_source` random access (and needs no TensorFlow).
    kwargs["file_format"] = kwargs.get("file_format") or "array_record"
    super().__init__(**kwargs)
    # Beam path: split -> its listing, whose views the workers check; their skips are added in
    # `_process_pipeline_result`.
    self._scans: dict[str, layout_lib.ScanResult] = {}

  def _info(self) -> tfds.core.DatasetInfo:
    cfg: TaskonomyConfig = self.builder_config
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=features_lib.features(cfg.domains, cfg.resolution),
        homepage=_HOMEPAGE,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
    cfg: TaskonomyConfig = self.builder_config
    root = files_lib.as_epath(os.fspath(dl_manager.manual_dir))
    layout = layout_lib.detect_layout(root)  # LayoutError if neither
    domains = features_lib.check_domains(cfg.domains)
    scans = {}
    found = layout_lib.list_buildings(root, layout) if cfg.split_size == "found" else ()
    for split, buildings in cfg.building_lists(found).items():
      # The Beam driver only lists: its workers read and check the views.
      scans[split] = layout_lib.scan(root, domains, buildings, resolution=cfg.resolution,
                                     layout=layout, check=not cfg.use_beam)
    self.info.metadata["layout"] = layout
    self._root, self._layout = root, layout
    self._report(scans)
    generators = {}
    for split, scan in scans.items():
      if not scan.views:
        continue  # an empty split is left out, and reported
      if cfg.use_beam:
        self._scans[split] = scan
        report_path = os.fspath(epath.Path(self.data_dir) / _SKIPPED_FILE.format(split=split))
        generators[SPLIT_NAMES[split]] = _beam_transform(scan, domains, cfg.resolution,
                                                         report_path)
      else:
        generators[SPLIT_NAMES[split]] = self._generate_examples(scan, domains)
    return generators

  def _report(self, scans: dict[str, layout_lib.ScanResult]) -> None:
    """Stores the report of `scans` in the metadata, logs its warnings; raises ValueError when
    no split has a usable view."""
    cfg: TaskonomyConfig = self.builder_config
    report = {split: scan.report() for split, scan in scans.items()}
    for split, scan in scans.items():
      if scan.skipped or scan.missing_buildings or scan.ignored:
        logging.warning("taskonomy %s: skipped %d views (%s); missing buildings: %s; ignored %d "
                        "files (%s)", split, len(scan.skipped),
                        report[split]["skipped_by_reason"], scan.missing_buildings or "none",
                        len(scan.ignored), report[split]["ignored_by_reason"])
    self.info.metadata["skipped"] = report
    if not any(scan.views for scan in scans.values()):
      raise ValueError(
          f"no usable views under {self._root} for the {cfg.split_size} split (buildings "
          f"found: {layout_lib.list_buildings(self._root, self._layout)[:10]}...): "
          + json.dumps({s: r["skipped_by_reason"] for s, r in report.items()})
          + _resolution_hint(report, cfg.resolution))

  def _process_pipeline_result(self, pipeline_result: Any) -> None:
    """Adds the views the Beam workers skipped to the report (TFDS writes the info after)."""
    del pipeline_result  # the skips come back through files, which every runner supports
    if not self._scans:
      return
    scans = {}
    for split, report in self.info.metadata["skipped"].items():
      if split not in self._scans:  # no view listed: its report is complete
        scans[split] = report
        continue
      path = epath.Path(self.data_dir) / _SKIPPED_FILE.format(split=split)
      self._scans[split].skip(json.loads(path.read_text()))
      path.unlink()
      scans[split] = self._scans[split]
    self._scans = {}
    listed = {s: v for s, v in scans.items() if isinstance(v, layout_lib.ScanResult)}
    self._report(listed)  # raises if every view was skipped
    self.info.metadata["skipped"] = {
        s: self.info.metadata["skipped"][s] if s in listed else r for s, r in scans.items()}

  def _generate_examples(self, scan: layout_lib.ScanResult, domains: tuple[str, ...]):
    items = [(features_lib.example_key(k), k, scan.files[k]) for k in scan.views]
    return (_read_example(item, domains) for item in items)


def _resolution_hint(report: dict[str, Any], resolution: int) -> str:
  """Which resolution the files have, when views were skipped for their size."""
  sizes: dict[str, int] = {}
  for split_report in report.values():
    for size, n in split_report["wrong_sizes"].items():
      sizes[size] = sizes.get(size, 0) + n
  if not sizes:
    return ""
  found = ", ".join(f"{size} ({n} views)" for size, n in sizes.items())
  hint = f". The images are {found}, not {resolution}x{resolution}"
  side, _, other = next(iter(sizes)).partition("x")
  if len(sizes) == 1 and side == other:
    hint += f": build with --resolution {side} (the config's `resolution`)"
  return hint


def _read_example(item: tuple[str, layout_lib.ViewKey, dict[str, epath.Path]],
                  domains: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
  key, view_key, files = item
  return key, features_lib.example(view_key, layout_lib.read_view(files), domains)


def _read_checked_example(item: tuple[str, layout_lib.ViewKey, dict[str, str]],
                          domains: tuple[str, ...], resolution: int):
  """A Beam worker's step: reads and checks one view from wherever its files are; yields the
  example, or the view and why it is skipped on the `skipped` output."""
  beam = tfds.core.lazy_imports.apache_beam
  key, view_key, files = item
  reason, stored = layout_lib.read_checked_view(files, resolution)
  if reason:
    yield beam.pvalue.TaggedOutput("skipped", (str(view_key), reason))
  else:
    yield key, features_lib.example(view_key, stored, domains)


def _write_skipped(skipped: list[tuple[str, str]], path: str) -> None:
  """Writes the views a split's workers skipped (view -> reason) as JSON, for the driver."""
  epath.Path(path).write_text(json.dumps(dict(sorted(skipped))))


def _beam_read_views(pcoll: Any, items: list, domains: tuple[str, ...], resolution: int,
                     report_path: str) -> Any:
  """root -> (key, example) for each good view of `items`, the skipped ones written to
  `report_path` (an empty JSON object when none was)."""
  beam = tfds.core.lazy_imports.apache_beam
  read = (pcoll
          | "Views" >> beam.Create(items)
          # Each view is read on a worker: no file is read where the pipeline is built.
          | "Reshuffle" >> beam.Reshuffle()
          | "ReadAndCheck" >> beam.FlatMap(_read_checked_example, domains=domains,
                                           resolution=resolution).with_outputs(
                                               "skipped", main="examples"))
  _ = (read.skipped
       | "CollectSkipped" >> beam.combiners.ToList()
       | "WriteSkipped" >> beam.Map(_write_skipped, path=report_path))
  return read.examples


def _beam_transform(scan: layout_lib.ScanResult, domains: tuple[str, ...], resolution: int,
                    report_path: str) -> Any:
  """A split's Beam transform over the views `scan` listed."""
  beam = tfds.core.lazy_imports.apache_beam
  # Paths as text: small to ship to the workers, and each worker opens them with epath.
  items = [(features_lib.example_key(k), k, {d: os.fspath(p) for d, p in scan.files[k].items()})
           for k in scan.views]
  return beam.ptransform_fn(_beam_read_views)(items, domains, resolution, report_path)
