"""StreamingRenderer: causal, stateful, chunk-size independent; SyntheticSource equals generate_recording."""

from __future__ import annotations

import numpy as np
import pytest

from bci import ConfigError
from bci.synthesis import (
    StreamingRenderer,
    SyntheticSource,
    generate_recording,
    make_probe,
    make_unit_templates,
)


def _renderer(**kwargs: object) -> StreamingRenderer:
    rec = generate_recording(n_channels=8, n_units=3, duration_s=0.01, seed=11, noise_uv=0.0)
    params: dict = {
        "noise_uv": 5.0,
        "lfp": True,
        "seed": 4,
        "positions": rec.positions,
        "noise_common_fraction": 0.2,
        "saturation_uv": 400.0,
        **kwargs,
    }
    return StreamingRenderer(rec.templates, rec.trough_offset, 8, 30000.0, **params)


def _events(n_total: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    samples = np.sort(rng.integers(0, n_total, 400))
    units = rng.integers(0, 3, samples.size)
    amps = rng.uniform(0.8, 1.2, samples.size)
    # spikes overlapping each other and chunk edges, and artifacts whose tails span many chunks
    samples[10] = samples[11]
    artifacts = np.array([500, 5000, 5003, 15000])
    return samples, units, amps, artifacts


def _render_in_chunks(renderer: StreamingRenderer, sizes: list[int], events: tuple) -> np.ndarray:
    samples, units, amps, artifacts = events
    trough = renderer.trough_offset
    out = []
    start = 0
    for n in sizes:
        end = start + n
        # hand each spike over in the chunk where its template starts (the latest allowed time)
        sel = (samples - trough >= start) & (samples - trough < end)
        if start == 0:
            sel |= samples - trough < 0
        art = artifacts[(artifacts >= start) & (artifacts < end)]
        out.append(renderer.render(n, samples[sel], units[sel], amps[sel], art))
        start = end
    return np.concatenate(out)


def test_chunked_rendering_is_bit_identical_to_one_piece() -> None:
    rng = np.random.default_rng(0)
    n_total = 20000
    events = _events(n_total, rng)
    whole = _renderer().render(n_total, events[0], events[1], events[2], events[3])
    assert whole.dtype == np.float32 and whole.shape == (n_total, 8)
    for sizes in ([1] * 300 + [n_total - 300], [30] * (n_total // 30) + [n_total % 30], None):
        if sizes is None:  # random chunk sizes, some empty
            sizes = []
            while sum(sizes) < n_total:
                sizes.append(int(min(rng.integers(0, 700), n_total - sum(sizes))))
        chunked = _render_in_chunks(_renderer(), sizes, events)
        np.testing.assert_array_equal(chunked, whole)


def test_spikes_given_early_wait_for_their_chunk() -> None:
    rng = np.random.default_rng(1)
    events = _events(6000, rng)
    whole = _renderer().render(6000, *events)
    early = _renderer()
    parts = [early.render(1000, *events)] + [early.render(1000) for _ in range(5)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_late_spikes_are_clipped_and_counted_never_rewrite_the_past() -> None:
    r = _renderer(noise_uv=0.0, lfp=None, saturation_uv=None)
    first = r.render(100)
    assert np.all(first == 0.0)
    # trough at sample 110: the template started at 80, already emitted
    chunk = r.render(100, [110], [0])
    assert r.n_late_spikes == 1
    full = _renderer(noise_uv=0.0, lfp=None, saturation_uv=None).render(200, [110], [0])
    np.testing.assert_array_equal(chunk, full[100:])
    assert r.latency_samples == r.trough_offset


def test_template_tails_carry_into_later_chunks() -> None:
    r = _renderer(noise_uv=0.0, lfp=None, saturation_uv=None)
    t = r.templates[1]
    # trough at the last sample of the first chunk: the rest of the template is in the next chunk
    a = r.render(50, [49], [1])
    b = r.render(100)
    start = 49 - r.trough_offset
    np.testing.assert_allclose(a[start:], t[: 50 - start], rtol=1e-6)
    np.testing.assert_allclose(b[: t.shape[0] - (50 - start)], t[50 - start :], rtol=1e-6)


def test_reset_restarts_the_stream() -> None:
    r = _renderer()
    a = r.render(500, [100, 300], [0, 2])
    r.render(500, [600], [1])
    r.reset()
    assert r.next_sample == 0
    np.testing.assert_array_equal(r.render(500, [100, 300], [0, 2]), a)


def test_source_in_chunks_equals_generate_recording() -> None:
    params = {
        "n_channels": 8,
        "n_units": 5,
        "seed": 12,
        "lfp": True,
        "firing_rates_hz": (20.0, 40.0),
    }
    rec = generate_recording(duration_s=1.0, **params)
    source = SyntheticSource(**params)
    data, spikes, total = [], [], 0
    rng = np.random.default_rng(3)
    while total < 30000:
        n = int(min(rng.integers(1, 900), 30000 - total))
        d, s = source.read(n)
        assert np.all((s["sample_index"] >= total) & (s["sample_index"] < total + n))
        data.append(d)
        spikes.append(s)
        total += n
    np.testing.assert_array_equal(np.concatenate(data), rec.traces)
    np.testing.assert_array_equal(np.concatenate(spikes), rec.spikes)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_channels": 0}, "n_channels"),
        ({"n_channels": 5}, "templates"),
        ({"sfreq": float("nan")}, "sfreq"),
        ({"noise_uv": -2.0}, "noise_uv"),
        ({"trough_offset": 500}, "trough_offset"),
        ({"templates": np.full((1, 10, 4), np.nan)}, "NaN"),
    ],
)
def test_renderer_rejects_bad_parameters(kwargs: dict, match: str) -> None:
    params: dict = {
        "templates": np.zeros((2, 10, 4)),
        "trough_offset": 3,
        "n_channels": 4,
        "sfreq": 30000.0,
        **kwargs,
    }
    with pytest.raises(ConfigError, match=match):
        StreamingRenderer(**params)


def test_render_rejects_bad_spikes() -> None:
    r = StreamingRenderer(np.zeros((2, 10, 4)), 3, 4, 30000.0)
    with pytest.raises(ConfigError, match="spike_units"):
        r.render(10, [5], [2])
    with pytest.raises(ConfigError, match="differ in length"):
        r.render(10, [5, 6], [0])
    with pytest.raises(ConfigError, match="spike_amplitudes"):
        r.render(10, [5], [0], [np.nan])
    with pytest.raises(ConfigError, match="n_samples"):
        r.render(-1)


@pytest.mark.parametrize("layout", ["linear", "tetrode-like", "grid"])
def test_probe_layouts_have_distinct_contacts_at_the_pitch(layout: str) -> None:
    pos = make_probe(32, layout, pitch_um=20.0)
    assert pos.shape == (32, 2)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=2)
    np.fill_diagonal(d, np.inf)
    assert d.min() == pytest.approx(20.0)
    assert len({tuple(p) for p in pos}) == 32


def test_probe_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="n_channels"):
        make_probe(0)
    with pytest.raises(ConfigError, match="pitch_um"):
        make_probe(4, pitch_um=-1.0)
    with pytest.raises(ConfigError, match="layout"):
        make_probe(4, layout="circle")


def test_unit_templates_drive_a_renderer_from_outside_spike_times() -> None:
    pos = make_probe(16, "tetrode-like")
    units = make_unit_templates(5, pos, 30000.0, seed=2)
    again = make_unit_templates(5, pos, 30000.0, seed=2)
    np.testing.assert_array_equal(units.templates, again.templates)
    assert units.templates.shape == (5, 90, 16) and units.unit_positions.shape == (5, 3)
    r = StreamingRenderer(
        units.templates, units.trough_offset, 16, 30000.0, noise_uv=0.0, positions=pos
    )
    # a network simulation announces each spike at its trough; the voltage lags by latency_samples
    out = r.render(200, [150], [3])
    assert r.n_late_spikes == 0
    assert out[150, units.peak_channels[3]] == pytest.approx(units.trough_uv[3], rel=1e-6)
    with pytest.raises(ConfigError, match="n_units"):
        make_unit_templates(0, pos, 30000.0)
