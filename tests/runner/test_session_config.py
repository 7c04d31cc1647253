"""Session configs: YAML in, validated model out; every bad key, value or file named clearly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from bci.errors import ConfigError
from bci.session.config import (
    SessionConfigError,
    apply_overrides,
    load_session,
    parse_session,
)
from bci.stream import BinnedChunk, Stage, StateChunk, StreamSpec


class ConfigTestDecoder(Stage):
    """A decoder that needs a model file (only its constructor matters here)."""

    accepts = ("binned",)

    def __init__(self, model: str | None = None, gain: float = 1.0) -> None:
        self.model = model

    def prepare(self, upstream: StreamSpec) -> StreamSpec:
        super().prepare(upstream)
        self.output_spec = StreamSpec("state", 1, upstream.rate_hz)
        return self.output_spec

    def process(self, chunk: BinnedChunk) -> StateChunk:
        return StateChunk(chunk.counts[:, :1], np.zeros(chunk.n_bins))


DECODER = f"{__name__}:ConfigTestDecoder"


def _base(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": "unit_test",
        "duration_s": 5.0,
        "seed": 2,
        "source": {"kind": "synthetic", "n_channels": 8, "n_units": 3},
        "calibration": {"duration_s": 1.0},
        "pipeline": [
            {"stage": "bandpass", "params": {"low_hz": 300.0, "high_hz": 6000.0}},
            {"stage": "common_reference"},
            {"stage": "threshold_crossings", "params": {"calibration_s": 1.0}},
            {"stage": "spike_binner", "params": {"bin_s": 0.02}},
        ],
    }
    config.update(changes)
    return config


def _error(data: dict[str, Any], base: Path | None = None) -> str:
    with pytest.raises(SessionConfigError) as info:
        parse_session(data, where="in test.yaml", base=base)
    assert isinstance(info.value, ConfigError)
    return str(info.value)


def test_a_valid_config_fills_in_defaults_and_round_trips_through_yaml(tmp_path: Path) -> None:
    config = parse_session(_base())
    assert config.pacing == "realtime"
    assert config.source.kind == "synthetic" and config.source_seed == 2
    assert config.recording.enabled and config.timing.deadline_ms == 5.0
    path = tmp_path / "again.yaml"
    path.write_text(yaml.safe_dump(config.resolved()))
    assert load_session(path).resolved() == config.resolved()


def test_unknown_keys_are_errors_that_list_the_allowed_keys() -> None:
    text = _error(_base(durration_s=3))
    assert "unknown key 'durration_s'" in text and "'duration_s'" in text
    text = _error(_base(source={"kind": "synthetic", "chanels": 4}))
    assert "unknown key 'source.chanels'" in text and "'n_channels'" in text
    text = _error(_base(recording={"enabled": True, "nixx": False}))
    assert "unknown key 'recording.nixx'" in text and "'nix'" in text


def test_bad_values_name_the_key_the_value_and_the_allowed_values() -> None:
    text = _error(_base(duration_s=-1))
    assert "'duration_s'" in text and "-1" in text and "greater than 0" in text
    text = _error(_base(pacing="fast"))
    assert "'pacing'" in text and "'fast'" in text and "'realtime'" in text and "'lockstep'" in text
    text = _error(_base(source={"kind": "amplifier"}))
    assert "'source.kind'" in text and "'amplifier'" in text
    assert all(k in text for k in ("'plant'", "'lsl'", "'replay'", "'synthetic'", "'motor'"))
    text = _error(_base(name="has space"))
    assert "'name'" in text and "'has space'" in text


def test_an_unknown_stage_or_parameter_is_named_with_what_exists() -> None:
    pipeline = [{"stage": "bandpas"}]
    text = _error(_base(pipeline=pipeline))
    assert "'pipeline.0.stage'" in text and "'bandpas'" in text and "'bandpass'" in text
    pipeline = [{"stage": "bandpass", "params": {"low": 300}}]
    text = _error(_base(pipeline=pipeline))
    assert "'pipeline.0.params'" in text and "'low'" in text and "'low_hz'" in text


def test_a_missing_model_file_fails_at_load(tmp_path: Path) -> None:
    config = _base(decoder={"stage": DECODER, "model": "models/absent.npz"})
    text = _error(config, base=tmp_path)
    assert "'decoder.model'" in text and str(tmp_path / "models" / "absent.npz") in text
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "absent.npz").write_bytes(b"")
    parsed = parse_session(config, base=tmp_path)
    assert parsed.decoder is not None and parsed.decoder.model == tmp_path / "models/absent.npz"


def test_inconsistent_sessions_are_refused() -> None:
    text = _error(_base(pacing="lockstep"))
    assert "lockstep" in text and "'plant'" in text
    text = _error(_base(duration_s=1.0, calibration={"duration_s": 2.0}))
    assert "duration_s" in text and "calibration.duration_s" in text
    text = _error(_base(source={"kind": "plant", "network": {"seed": 4}}))
    assert "'network.seed'" in text and "source.seed" in text
    text = _error(_base(source={"kind": "plant", "probe": {"n_chanels": 4}}))
    assert "'n_chanels'" in text and "'n_channels'" in text and "VirtualProbe" in text
    text = _error(_base(source={"kind": "plant", "limits": {"session_token": "x"}}))
    assert "'limits.session_token' is set by the runner" in text
    text = _error(_base(source={"kind": "lsl"}))
    assert "'name', 'type' or 'source_id'" in text


def test_a_lockstep_plant_takes_a_pace_and_a_bad_one_is_named() -> None:
    from bci.runner.plant_child import plant_timing
    from bci.runner.sources import plant_settings

    plant = {"kind": "plant", "timing": {"max_speed": 1.0}}
    config = parse_session(_base(pacing="lockstep", source=plant))
    settings = plant_settings(config.source, 0, "t", True, "ctl", "tok")  # type: ignore[arg-type]
    # the timing the runner and the plant's process build from them
    timing = plant_timing(settings)
    assert timing.lockstep and timing.max_speed == 1.0
    text = _error(_base(source=plant))  # real time: nothing to pace
    assert "'source.timing'" in text and "'max_speed'" in text and "pacing: lockstep" in text
    for bad in (0, -1.0, float("nan"), "fast"):
        source = {"kind": "plant", "timing": {"max_speed": bad}}
        text = _error(_base(pacing="lockstep", source=source))
        assert "'source.timing'" in text and "'max_speed'" in text, text


def test_a_file_that_is_not_yaml_or_not_a_mapping_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SessionConfigError, match="not valid YAML"):
        load_session(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(SessionConfigError, match="expected a mapping"):
        load_session(listing)
    with pytest.raises(SessionConfigError, match="not a file"):
        load_session(tmp_path / "missing.yaml")
    # safe_load only: a YAML Python object tag is refused, never constructed
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(SessionConfigError, match="not valid YAML"):
        load_session(evil)


def test_overrides_set_nested_keys_list_items_and_typed_values(tmp_path: Path) -> None:
    data = apply_overrides(
        _base(),
        [
            "duration_s=7",
            "source.seed=9",
            "pipeline.2.params.threshold_rms=-4",
            "recording.enabled=false",
            "timing.deadline_ms=2.5",
        ],
    )
    config = parse_session(data)
    assert config.duration_s == 7.0 and config.source_seed == 9
    assert config.pipeline[2].params["threshold_rms"] == -4
    assert config.recording.enabled is False and config.timing.deadline_ms == 2.5
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_base()))
    assert load_session(path, ["seed=5"]).source_seed == 5
    with pytest.raises(SessionConfigError, match="KEY=VALUE"):
        apply_overrides(_base(), ["duration_s"])
    with pytest.raises(SessionConfigError, match="list of 4 items"):
        apply_overrides(_base(), ["pipeline.7.stage=bandpass"])
    with pytest.raises(SessionConfigError, match="unknown key 'sede'"):
        load_session(path, ["sede=5"])
