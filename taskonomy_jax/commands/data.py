"""`taskonomy data ...`: build the TFDS datasets and export synthetic views in the real layout.

    taskonomy data build taskonomy_synthetic --config r64_tiny --data-dir ~/tensorflow_datasets
    taskonomy data build taskonomy --config tiny_rgb_depth_normal --manual-dir /data/taskonomy
    taskonomy data build taskonomy --config full --manual-dir gs://b/taskonomy \
        --data-dir gs://b/tfds --beam-pipeline-options "--runner=DataflowRunner --project=p ..."
    taskonomy data export /tmp/taskonomy_export --buildings 4 --resolution 64 --layout domain
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os

import tensorflow_datasets as tfds

from data_builders import beam_options, catalog
from taskonomy_jax import files as files_lib
from taskonomy_jax.data import features as features_lib
from taskonomy_jax.data import layout as layout_lib
from taskonomy_jax.data import synthetic


def add_subcommand(sub: argparse._SubParsersAction) -> None:
  p = sub.add_parser("data", help="build the TFDS datasets, export synthetic views",
                     description="Build the Taskonomy TFDS datasets (real or synthetic) and "
                                 "export synthetic views in the real on-disk layout.")
  dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

  b = dsub.add_parser("build", help="prepare a TFDS dataset (array_record)")
  b.add_argument("dataset", choices=sorted(catalog.BUILDERS))
  b.add_argument("--config", help="builder config name (default: the builder's default)")
  b.add_argument("--data-dir", help="TFDS data directory, local or gs:// (default: "
                 "~/tensorflow_datasets)")
  b.add_argument("--manual-dir", help="taskonomy only: the downloaded files (either layout); "
                 "a local path or a URL epath reads (gs://, s3://, file://)")
  b.add_argument("--resolution", type=int,
                 help="taskonomy only: image side of the files (default 512, the release's)")
  b.add_argument("--beam-pipeline-options", metavar="FLAGS",
                 help="taskonomy only: generate with Apache Beam, these pipeline options (one "
                      "string, shell syntax), e.g. \"--runner=DataflowRunner --project=p "
                      "--region=us-central1 --temp_location=gs://b/tmp\" or \"--direct_num_"
                      "workers=8 --direct_running_mode=multi_processing\" (default runner: "
                      "DirectRunner)")
  b.add_argument("--beam-runner", choices=sorted(beam_options.RUNNERS),
                 help="taskonomy only: short for --beam-pipeline-options --runner=DirectRunner")
  b.set_defaults(run=_run_build)

  e = dsub.add_parser("export", help="write synthetic views as the real dataset's files")
  e.add_argument("out_dir")
  e.add_argument("--buildings", type=int, default=2, help="number of buildings (world seeds)")
  e.add_argument("--first-seed", type=int, default=0)
  e.add_argument("--resolution", type=int, default=64)
  e.add_argument("--points-per-building", type=int, default=8)
  e.add_argument("--layout", choices=layout_lib.LAYOUTS, default="domain",
                 help="domain: {domain}/{building}/... (omnidata); building: the original")
  e.add_argument("--domains", default="all",
                 help=f"a subset name ({', '.join(features_lib.DOMAIN_SUBSETS)}) or a comma "
                      "separated list of domains")
  e.set_defaults(run=_run_export)


def _domains(spec: str) -> tuple[str, ...]:
  if spec in features_lib.DOMAIN_SUBSETS:
    return features_lib.DOMAIN_SUBSETS[spec]
  return features_lib.check_domains([d.strip() for d in spec.split(",") if d.strip()])


def _run_build(args: argparse.Namespace) -> int:
  cls = catalog.builder_class(args.dataset)
  names = [c.name for c in cls.BUILDER_CONFIGS]
  if args.config and args.config not in names:
    raise ValueError(f"unknown config {args.config!r} of {args.dataset}; accepted: "
                     f"{', '.join(names)}")
  if args.dataset == "taskonomy" and not args.manual_dir:
    raise ValueError("the real dataset is read from --manual-dir (see "
                     "data_builders/taskonomy/README.md for the download)")
  # file:// URLs as local paths (epath and TFDS have no file scheme); gs:// etc. pass as given.
  manual_dir = os.fspath(files_lib.as_epath(args.manual_dir)) if args.manual_dir else None
  data_dir = os.fspath(files_lib.as_epath(args.data_dir)) if args.data_dir else None
  beam = args.beam_runner or args.beam_pipeline_options is not None
  if beam and args.dataset != "taskonomy":
    raise ValueError("--beam-pipeline-options and --beam-runner apply to the real dataset "
                     "(taskonomy) only; the synthetic one renders in one process")
  options = _beam_options(args) if beam else None  # bad flags: an error before any listing
  if manual_dir:
    layout_lib.detect_layout(manual_dir)  # a clear LayoutError before TFDS starts
  kwargs: dict = {"config": args.config} if args.config else {}
  if beam or args.resolution:
    if args.dataset != "taskonomy":
      raise ValueError("--resolution applies to the real dataset (taskonomy) only; synthetic "
                       "resolutions are configs (r32_mini, r64, r256, ...)")
    name = args.config or cls.DEFAULT_CONFIG_NAME
    config = next(c for c in cls.BUILDER_CONFIGS if c.name == name)
    if args.resolution:  # another resolution is another dataset: name it so
      config = dataclasses.replace(config, name=f"{name}_{args.resolution}px",
                                   resolution=args.resolution)
    kwargs["config"] = dataclasses.replace(config, use_beam=beam)
  if data_dir:
    kwargs["data_dir"] = data_dir
  builder = cls(**kwargs)
  dl: dict = {}
  if manual_dir:
    dl["manual_dir"] = manual_dir
  if options is not None:
    # Options only, no runner object: Beam picks the runner from --runner (default DirectRunner)
    # and TFDS then builds no PipelineOptions of its own from sys.argv.
    dl["beam_options"] = options
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(**dl))
  splits = {k: v.num_examples for k, v in builder.info.splits.items()}
  reports = builder.info.metadata.get("skipped", {}) if builder.info.metadata else {}
  summary = {"data_dir": str(builder.data_dir), "splits": splits}
  if builder.info.metadata:
    summary["skipped"] = {k: v.get("num_skipped") for k, v in reports.items()}
    # Files the scan passed over (stray files, names that are not UTF-8), listed in the metadata.
    summary["ignored"] = {k: v.get("num_ignored", 0) for k, v in reports.items()}
  print(json.dumps(summary, indent=1))
  return 0


def _beam_options(args: argparse.Namespace) -> object:
  """The PipelineOptions of --beam-pipeline-options and --beam-runner (checked)."""
  flags = beam_options.split(args.beam_pipeline_options or "")
  if args.beam_runner:
    runner = beam_options.RUNNERS[args.beam_runner]
    given = [f for f in flags if f.split("=", 1)[0] == "--runner"]
    if given:
      raise beam_options.BeamOptionsError(
          f"--beam-runner {args.beam_runner} and --beam-pipeline-options {' '.join(given)} both "
          "name a runner; give it once, in --beam-pipeline-options")
    flags = [f"--runner={runner}", *flags]
  return beam_options.pipeline_options(flags)


def _run_export(args: argparse.Namespace) -> int:
  if args.buildings < 1:
    raise ValueError(f"--buildings must be >= 1, got {args.buildings}")
  cfg = synthetic.world_config(args.resolution, points_per_building=args.points_per_building)
  summary = synthetic.export(args.out_dir, range(args.first_seed,
                                                 args.first_seed + args.buildings),
                             cfg, layout=args.layout, domains=_domains(args.domains))
  print(json.dumps({"out_dir": str(summary.out_dir), "layout": summary.layout,
                    "buildings": summary.buildings, "views": summary.views,
                    "resumed": summary.resumed}, indent=1))
  return 0
