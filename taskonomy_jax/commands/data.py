"""`taskonomy data ...`: build the TFDS datasets and export synthetic views in the real layout.

    taskonomy data build taskonomy_synthetic --config r64_tiny --data-dir ~/tensorflow_datasets
    taskonomy data build taskonomy --config tiny_rgb_depth_normal --manual-dir /data/taskonomy
    taskonomy data export /tmp/taskonomy_export --buildings 4 --resolution 64 --layout domain
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import tensorflow_datasets as tfds

from data_builders import catalog
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
  b.add_argument("--data-dir", help="TFDS data directory (default: ~/tensorflow_datasets)")
  b.add_argument("--manual-dir", help="taskonomy only: the downloaded files (either layout)")
  b.add_argument("--resolution", type=int,
                 help="taskonomy only: image side of the files (default 512, the release's)")
  b.add_argument("--beam-runner", choices=["direct"],
                 help="taskonomy only: generate with Apache Beam's DirectRunner (for other "
                      "runners build the builder with use_beam and DownloadConfig(beam_runner=...))")
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
  if args.manual_dir:
    layout_lib.detect_layout(args.manual_dir)  # a clear LayoutError before TFDS starts
  kwargs: dict = {"config": args.config} if args.config else {}
  if args.beam_runner or args.resolution:
    if args.dataset != "taskonomy":
      raise ValueError("--beam-runner and --resolution apply to the real dataset (taskonomy) "
                       "only; synthetic resolutions are configs (r32_mini, r64, r256, ...)")
    name = args.config or cls.DEFAULT_CONFIG_NAME
    config = next(c for c in cls.BUILDER_CONFIGS if c.name == name)
    if args.resolution:  # another resolution is another dataset: name it so
      config = dataclasses.replace(config, name=f"{name}_{args.resolution}px",
                                   resolution=args.resolution)
    kwargs["config"] = dataclasses.replace(config, use_beam=bool(args.beam_runner))
  if args.data_dir:
    kwargs["data_dir"] = args.data_dir
  builder = cls(**kwargs)
  dl = {}
  if args.manual_dir:
    dl["manual_dir"] = args.manual_dir
  if args.beam_runner:
    import apache_beam as beam
    dl["beam_runner"] = beam.runners.DirectRunner()
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
