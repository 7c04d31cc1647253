"""The ``bci`` subcommands refuse bad input before starting anything: exit code 2 (click's usage
error) and a message naming the flag, never a raw traceback or a Python parameter name."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bci.cli.main import cli


def _run(*args: str):
    return CliRunner().invoke(cli, list(args))


def _assert_usage_error(result, flag: str) -> None:
    assert result.exit_code == 2, result.output
    assert flag in result.output
    assert isinstance(result.exception, SystemExit)  # no traceback


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["source", "synthetic", "--duration", "-1"], "--duration"),
        (["source", "synthetic", "--duration", "nan"], "--duration"),
        (["source", "synthetic", "--channels", "0"], "--channels"),
        (["source", "synthetic", "--chunk-ms", "0"], "--chunk-ms"),
        (["source", "synthetic", "--rates-hz", "15", "2"], "--rates-hz"),
        (["source", "synthetic", "--artifact-hz", "20000"], "--artifact-hz"),
        (["demo", "--channels", "0"], "--channels"),
        (["demo", "--units", "-1"], "--units"),
        (["demo", "--duration", "-1"], "--duration"),
        (["demo", "--duration", "inf"], "--duration"),
        (["record", "--stream", "x", "--out", "o", "--duration", "nan"], "--duration"),
        (["record", "--stream", "x", "--out", "o", "--status-interval", "-5"], "--status-interval"),
        (["record", "--stream", "x", "--out", "o", "--timeout", "-1"], "--timeout"),
        (["record", "--stream", "x", "--out", "o", "--flush-interval", "2"], "--flush-interval"),
        (["record", "--stream", "x", "--run-name", "a b"], "--run-name"),
        (["replay", "r.xdf", "--speed", "0"], "--speed"),
        (["replay", "r.xdf", "--linger", "-1"], "--linger"),
    ],
)
def test_bad_flag_values_are_usage_errors_naming_the_flag(args, flag):
    result = _run(*args)
    _assert_usage_error(result, flag)
    # nothing started: no publisher banner, no "Running for -1 s"
    assert "Running" not in result.output and "Starting" not in result.output
    for python_name in ("duration_s", "n_channels", "timeout_s", "overwrite=True"):
        assert python_name not in result.output


def test_record_checks_the_output_path_before_looking_for_streams(tmp_path: Path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    # the stream does not exist and --timeout is long: only a check made first answers at once
    out = _run("record", "--stream", "nope", "--timeout", "60", "--out", str(blocker / "sub"))
    _assert_usage_error(out, "--out")
    assert "file.txt is a file, not a folder" in out.output
    existing = tmp_path / "taken.xdf"
    existing.write_bytes(b"precious")
    out = _run("record", "--stream", "nope", "--timeout", "60", "--out", str(existing))
    _assert_usage_error(out, "--overwrite")
    assert existing.read_bytes() == b"precious"


def test_demo_and_source_share_the_default_probe():
    from bci.cli.demo import demo
    from bci.cli.source import synthetic

    def defaults(command: click.Command) -> dict:
        return {p.name: p.default for p in command.params}

    d, s = defaults(demo), defaults(synthetic)
    for key in ("channels", "units", "seed"):
        assert d[key] == s[key], key


def test_run_demo_checks_arguments_before_starting_the_publisher():
    from bci import ConfigError
    from bci.cli.demo import run_demo

    for kwargs, name in (
        ({"n_channels": 0}, "n_channels"),
        ({"n_units": -1}, "n_units"),
        ({"duration_s": float("nan")}, "duration_s"),
    ):
        with pytest.raises(ConfigError, match=name):
            run_demo(**kwargs)


def test_session_repair_refuses_an_existing_out_before_reading(tmp_path: Path):
    src, out = tmp_path / "cut.xdf", tmp_path / "taken.xdf"
    src.write_bytes(b"XDF:")
    out.write_bytes(b"precious")
    result = _run("session", "repair", str(src), "--out", str(out))
    _assert_usage_error(result, "--overwrite")
    assert out.read_bytes() == b"precious"
