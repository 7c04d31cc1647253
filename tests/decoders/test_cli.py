"""``bci train-decoder`` on a recorded session, and the CLI's errors."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from bci.acquisition.metadata import make_stream_info
from bci.cli.main import cli
from bci.session.xdf import XDFWriter
from bci.synthesis.motor import simulate_reaching
from decoders import load


def write_session(path, seed: int, duration_s: float = 120.0):
    """A recording as `bci record` writes it: ground-truth spike markers and a kinematics stream."""
    data = simulate_reaching(n_units=20, duration_s=duration_s, bin_s=0.001, seed=seed)
    w = XDFWriter(path)
    t0 = 1000.0
    spikes = make_stream_info(
        "motor-groundtruth", "Markers", 1, 0.0, "string", "gt", labels=["spike"], units=""
    )
    sid = w.add_stream(spikes.as_xml())
    b, u = np.nonzero(data.counts)
    order = np.argsort(b, kind="stable")
    w.write_strings(
        sid,
        list(t0 + (b[order] + 0.5) * 0.001),
        [[f"unit={x} ch={x} sample={y * 30}"] for x, y in zip(u[order], b[order], strict=True)],
    )
    kin = make_stream_info(
        "motor-kinematics",
        "Kinematics",
        2,
        100.0,
        "float32",
        "kin",
        labels=["vx", "vy"],
        units=["cm/s", "cm/s"],
    )
    kid = w.add_stream(kin.as_xml())
    v = data.velocity.reshape(-1, 10, 2).mean(axis=1)  # 10-ms means
    w.write_numeric(kid, t0 + (np.arange(len(v)) + 0.5) * 0.01, v.astype(np.float32), "float32")
    w.close()
    return data


def test_train_decoder_from_a_recording(tmp_path):
    run = tmp_path / "run1"
    run.mkdir()
    write_session(run / "recording.xdf", seed=51)
    out = tmp_path / "model.npz"
    res = CliRunner().invoke(
        cli,
        [
            "train-decoder",
            str(run),
            "--target",
            "motor-kinematics",
            "--decoder",
            "wiener",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    dec = load(out)
    assert dec.n_units == 20 and dec.info.output_names == ("vx", "vy") and dec.info.bin_s == 0.02
    assert dec.info.output_units == ("cm/s", "cm/s")
    test = simulate_reaching(n_units=20, duration_s=60.0, seed=51)  # the same units and moves
    pred = dec.predict(test.counts)
    y = test.velocity
    assert (1 - ((y - pred) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)).mean() > 0.3


def test_cli_errors_name_the_problem(tmp_path):
    run = tmp_path / "run1"
    run.mkdir()
    write_session(run / "recording.xdf", seed=52, duration_s=5.0)
    r = CliRunner().invoke(
        cli, ["train-decoder", str(run), "--target", "hand", "--out", str(tmp_path / "m")]
    )
    assert r.exit_code != 0 and "no regular stream named 'hand'" in r.output
    r = CliRunner().invoke(
        cli,
        [
            "train-decoder",
            str(run),
            "--target",
            "motor-kinematics:vz",
            "--out",
            str(tmp_path / "m"),
        ],
    )
    assert r.exit_code != 0 and "vz" in r.output
    r = CliRunner().invoke(
        cli,
        [
            "train-decoder",
            str(run),
            "--target",
            "motor-kinematics",
            "--bin-ms",
            "0",
            "--out",
            str(tmp_path / "m"),
        ],
    )
    assert r.exit_code != 0 and "--bin-ms" in r.output
    r = CliRunner().invoke(cli, ["source", "motor", "--kinematics-hz", "0"])
    assert r.exit_code != 0 and "--kinematics-hz" in r.output
    r = CliRunner().invoke(cli, ["source", "motor", "--population-seed", "-1"])
    assert r.exit_code == 2 and "--population-seed" in r.output
    r = CliRunner().invoke(
        cli, ["train-decoder", str(run), "--target", "kinematics", "--units", "0", "--out", "m"]
    )
    assert r.exit_code == 2 and "--units" in r.output
    r = CliRunner().invoke(
        cli,
        ["train-decoder", str(run), "--target", "kinematics", "--units", "5", "--out", "m"],
    )
    assert r.exit_code == 1 and "unit 19, but the decoder is to read 5 units" in r.output


def test_train_decoder_lays_out_the_binners_columns_and_keeps_its_provenance(tmp_path):
    run = tmp_path / "run1"
    run.mkdir()
    write_session(run / "recording.xdf", seed=53, duration_s=20.0)
    out = tmp_path / "model.npz"
    args = ["train-decoder", str(run), "--target", "kinematics:vx,vy", "--decoder", "wiener"]
    res = CliRunner().invoke(cli, [*args, "--units", "24", "--out", str(out)])
    assert res.exit_code == 0, res.output
    dec = load(out)
    assert dec.n_units == 24  # the binner's 24 columns; units 20-23 never fired here
    prov = dec.provenance
    assert prov["command"].startswith("bci train-decoder " + str(run))
    assert "--units 24" in prov["command"] and prov["seed"] == 0 and prov["wall_s"] >= 0
