"""session.nix: a Block survives neo's NixIO losslessly, and what NixIO cannot store is refused."""

from __future__ import annotations

import datetime as dt

import neo
import numpy as np
import pytest
import quantities as pq

from bci.session.nix import (
    NixAnnotationError,
    NixFileError,
    check_nix_annotations,
    load_nix,
    save_nix,
)


def _block() -> neo.Block:
    rng = np.random.default_rng(7)
    block = neo.Block(name="demo", rec_datetime=dt.datetime(2025, 1, 2, 3, 4, 5), seed=42)
    seg = neo.Segment(name="demo", lsl_time_zero=1234.5, controller="threshold_adbs")
    block.segments.append(seg)
    seg.analogsignals.append(
        neo.AnalogSignal(
            rng.normal(size=(300, 4)).astype(np.float32),
            units="uV",
            sampling_rate=30_000 * pq.Hz,
            t_start=0.25 * pq.s,
            name="Neural",
            array_annotations={
                "channel_names": np.array(["e1", "e2", "e3", "e4"]),
                "x_um": np.array([0.0, 0.0, 16.0, 16.0]),
            },
            lsl_source_id="probe-1",
            filtered=False,
        )
    )
    for unit in range(2):
        n = 5 + unit
        seg.spiketrains.append(
            neo.SpikeTrain(
                np.sort(rng.uniform(0, 1, n)) * pq.s,
                t_stop=1.0 * pq.s,
                waveforms=rng.normal(size=(n, 2, 24)) * pq.uV,
                sampling_rate=30_000 * pq.Hz,
                left_sweep=0.3 * pq.ms,
                name=f"unit {unit}",
                array_annotations={
                    "channel_index": np.arange(n) % 4,
                    "amplitude": rng.normal(-50, 5, n),
                },
                unit_id=unit,
                snr=float(4.5 + unit),
            )
        )
    seg.events.append(
        neo.Event(
            np.array([0.2, 0.5, 0.8]) * pq.s,
            labels=np.array(["stim_on", "amplitude_ma=1.5", "stim_off"]),
            name="Stim",
            array_annotations={
                "amplitude_ma": np.array([0.0, 1.5, 0.0]),
                "source": np.array(["safety", "controller", "safety"]),
            },
            limits=["charge", "rate"],
        )
    )
    group = neo.Group(name="sorted units", objects=list(seg.spiketrains))
    block.groups.append(group)
    return block


def test_block_round_trips_losslessly(tmp_path):
    block = _block()
    path = save_nix(block, tmp_path / "session.nix")
    assert (
        "nix_name" not in block.segments[0].analogsignals[0].annotations
    )  # caller's Block untouched
    back = load_nix(path)
    assert back.name == "demo" and back.annotations == {"seed": 42}
    assert back.rec_datetime == block.rec_datetime
    seg, seg2 = block.segments[0], back.segments[0]
    assert seg2.annotations == seg.annotations

    a, a2 = seg.analogsignals[0], seg2.analogsignals[0]
    np.testing.assert_array_equal(a2.magnitude, a.magnitude)
    assert a2.dtype == np.float32
    assert (a2.units, a2.sampling_rate, a2.t_start) == (a.units, a.sampling_rate, a.t_start)
    assert list(a2.array_annotations["channel_names"]) == ["e1", "e2", "e3", "e4"]
    np.testing.assert_array_equal(a2.array_annotations["x_um"], a.array_annotations["x_um"])
    assert a2.annotations == a.annotations

    for s, s2 in zip(seg.spiketrains, seg2.spiketrains, strict=True):
        np.testing.assert_array_equal(s2.times.magnitude, s.times.magnitude)
        assert s2.t_stop == s.t_stop
        np.testing.assert_array_equal(s2.waveforms.magnitude, s.waveforms.magnitude)
        assert s2.waveforms.units == pq.uV
        assert s2.sampling_rate == s.sampling_rate and s2.left_sweep == s.left_sweep
        for key in ("channel_index", "amplitude"):
            np.testing.assert_array_equal(s2.array_annotations[key], s.array_annotations[key])
        assert s2.annotations == s.annotations

    e, e2 = seg.events[0], seg2.events[0]
    assert list(e2.labels) == list(e.labels)
    np.testing.assert_array_equal(e2.times.magnitude, e.times.magnitude)
    np.testing.assert_array_equal(e2.array_annotations["amplitude_ma"], [0.0, 1.5, 0.0])
    assert list(e2.array_annotations["source"]) == ["safety", "controller", "safety"]
    assert e2.annotations == {"limits": ["charge", "rate"]}

    assert [g.name for g in back.groups] == ["sorted units"]
    assert [st.name for st in back.groups[0].spiketrains] == ["unit 0", "unit 1"]


def test_run_folder_path_and_overwrite(tmp_path):
    path = save_nix(_block(), tmp_path)
    assert path == tmp_path / "session.nix"
    assert load_nix(tmp_path).name == "demo"
    with pytest.raises(FileExistsError, match="overwrite"):
        save_nix(_block(), tmp_path, overwrite=False)


@pytest.mark.parametrize(
    ("value", "match"),
    [({"a": 1}, "dict"), (None, "NoneType"), ([[1, 2], [3, 4]], "flat list")],
)
def test_values_nixio_cannot_store_are_refused_before_writing(tmp_path, value, match):
    block = _block()
    block.segments[0].spiketrains[1].annotate(bad=value)
    with pytest.raises(NixAnnotationError, match=f"SpikeTrain 'unit 1'.*'bad'.*{match}"):
        save_nix(block, tmp_path / "x.nix")
    assert not (tmp_path / "x.nix").exists()
    check_nix_annotations(_block())  # the good Block passes


def test_missing_or_corrupt_nix_file_is_named(tmp_path):
    with pytest.raises(NixFileError, match="gone.nix"):
        load_nix(tmp_path / "gone.nix")
    bad = tmp_path / "bad.nix"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(NixFileError, match="bad.nix"):
        load_nix(bad)
