"""Taskonomy data: the real dataset's encodings and layouts, TFDS schema, targets, grain pipelines.

- `encodings`: on-disk encoding of every domain (encode / decode, file bytes).
- `layout`: the two released folder layouts (detect, scan with a skip report, read, write).
- `features`: the TFDS schema shared by the real and synthetic builders.
- `targets`, `geometry`: each task's training target and valid mask.
- `pipeline`: grain pipelines over `tfds.data_source` (shards, shuffling, resumable state,
  multi-view samples).
- `synthetic`: the world's views in stored form, and the exporter to the real layout.

The TFDS builders are in `data_builders/` (by name: `data_builders/catalog.py`);
`taskonomy data build|export` is taskonomy_jax/commands/data.py.
"""
