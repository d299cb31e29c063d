"""`taskonomy visualize`: a rendered walk-through becomes a side-by-side video that plays back
with the right frame count and size; the writers round-trip frames; bad input exits 2."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from taskonomy_jax import cli
from taskonomy_jax.taskbank import video


def _read_back(path) -> list[np.ndarray]:
  import imageio.v3 as iio

  return [np.asarray(f) for f in iio.imiter(path)]


def test_walk_frames_move_through_the_building():
  frames = list(video.render_walk(seed=1, frames=4, resolution=32))
  assert len(frames) == 4 and all(f.shape == (32, 32, 3) and f.dtype == np.uint8
                                  for f in frames)
  assert all(f.std() > 3 for f in frames)  # walls, floor and furniture, not a blank
  assert all(np.abs(a.astype(int) - b).mean() > 2 for a, b in itertools.pairwise(frames))


def test_walk_cameras_stay_in_the_room_and_level(monkeypatch):
  from taskonomy_jax import world

  bld = world.generate_building(1, world.WorldConfig(resolution=32))
  for loc, rot in video.walk_cameras(bld, 8):
    assert np.all(loc >= bld.room_lo[0]) and np.all(loc <= bld.room_hi[0])
    assert np.allclose(rot.T @ rot, np.eye(3), atol=1e-9)
    assert abs(rot[2, 0]) < 1e-9  # camera x axis horizontal: no roll


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_writer_round_trips_count_and_size(tmp_path, suffix):
  rng = np.random.default_rng(0)
  frames = [np.full((46, 80, 3), 40 * k, np.uint8) + rng.integers(0, 10, (46, 80, 3), np.uint8)
            for k in range(5)]
  out = tmp_path / f"v{suffix}"
  assert video.write_video(iter(frames), out, fps=5) == 5
  back = _read_back(out)
  assert len(back) == 5 and back[0].shape[:2] == (46, 80)
  # Lossy H.264 / GIF palette, but each frame keeps its brightness.
  assert [round(f[..., :3].mean() / 40) for f in back] == [0, 1, 2, 3, 4]
  assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left


def test_side_by_side_layout():
  image = np.zeros((32, 32, 3), np.float32)
  outs = {"normal": np.zeros((32, 32, 3), np.float32),
          "room_layout": np.array([0, 0, -3, 1.5, 0, 0, 4, 3, 3], np.float32)}
  pic = video.side_by_side(np.zeros((32, 32, 3), np.uint8), outs, image, 48)
  assert pic.shape == (48 + video.LABEL_HEIGHT, 3 * 48, 3)
  assert (pic[video.LABEL_HEIGHT + 5, 48 + 5] == [128, 128, 128]).all()  # the normal panel


def test_frames_from_a_folder_in_name_order(tmp_path):
  for k in (2, 0, 1):
    Image.new("RGB", (20, 10), (k * 50, 0, 0)).save(tmp_path / f"f{k}.png")
  (tmp_path / "notes.txt").write_text("not a frame")
  assert [int(f[0, 0, 0]) for f in video.read_frames(tmp_path)] == [0, 50, 100]


def test_transfer_video_from_a_walk_through(tmp_path, capsys):
  """The whole command: a rendered walk through building 2, five tasks of randomly initialised
  task networks, an .mp4 that plays with 6 frames of (panel + label) x 6 panels."""
  pytest.importorskip("taskonomy_jax.models", reason="the task networks are not on this branch")
  out = tmp_path / "walk.mp4"
  code = cli.main(["visualize", "--walk", "2", "--frames", "6", "--resolution", "32",
                   "--panel", "64", "--out", str(out)])
  assert code == 0 and out.is_file()
  back = _read_back(out)
  assert len(back) == 6
  assert back[0].shape == (64 + video.LABEL_HEIGHT, 64 * 6, 3)


@pytest.mark.parametrize("argv,words", [
    (["--walk", "0", "--tasks", "normals"], "Did you mean 'normal'"),
    (["--walk", "0", "--tasks", "random"], "has no output"),
    (["--walk", "0", "--out", "x.avi"], ".mp4 or .gif"),
    (["--input", "/nonexistent/dir"], "neither a video file nor a folder"),
    (["--walk", "0", "--resolution", "40"], "multiple of 16"),
])
def test_bad_input_exits_2(tmp_path, capsys, argv, words):
  argv = ["visualize", *argv]
  if "--out" not in argv:
    argv += ["--out", str(tmp_path / "v.mp4")]
  assert cli.main(argv) == 2
  assert words in capsys.readouterr().err
  assert not (tmp_path / "v.mp4").exists()
