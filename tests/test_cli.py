"""The `taskonomy` command as a whole: every subcommand explains itself, exit codes mean
something (0 ok, 1 runtime failure, 2 bad input), and `serve` binds loopback by default."""

from __future__ import annotations

import argparse

import pytest

from taskonomy_jax import cli


def _subcommands() -> dict[str, argparse.ArgumentParser]:
  parser = cli.build_parser()
  action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
  return dict(action.choices)


def test_the_user_facing_subcommands_exist():
  assert {"tasks", "solve", "figures", "serve", "visualize"} <= set(_subcommands())


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_subcommand_has_help(name, capsys):
  with pytest.raises(SystemExit) as e:
    cli.main([name, "--help"])
  assert e.value.code == 0
  out = capsys.readouterr().out
  assert out.startswith("usage: taskonomy " + name)
  assert len(out.splitlines()) > 3
  # The top-level help lists it with a one-line summary.
  assert _subcommands()[name].description


def test_top_level_help_lists_every_subcommand(capsys):
  with pytest.raises(SystemExit) as e:
    cli.main(["--help"])
  out = capsys.readouterr().out
  assert e.value.code == 0
  assert all(name in out for name in _subcommands())


def test_usage_errors_exit_2(capsys):
  for argv in (["no-such-command"], ["solve"], ["serve", "--port", "eighty"]):
    with pytest.raises(SystemExit) as e:
      cli.main(argv)
    assert e.value.code == 2


def test_bad_values_exit_2_with_a_message(capsys):
  assert cli.main(["tasks", "normals"]) == 2
  assert "Did you mean 'normal'" in capsys.readouterr().err
  assert cli.main(["serve", "--port", "70000"]) == 2
  assert "not a port number" in capsys.readouterr().err


def test_serve_binds_loopback_by_default():
  args = cli.build_parser().parse_args(["serve"])
  assert args.host == "127.0.0.1"
