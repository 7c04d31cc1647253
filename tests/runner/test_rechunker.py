"""Lockstep runs re-cut the stream into aligned pieces, so stages see the same calls every run."""

from __future__ import annotations

import numpy as np
import pytest

from bci.runner.chain import Rechunker
from bci.stream import SignalChunk


@pytest.mark.parametrize("seed", range(10))
def test_any_cut_of_the_stream_gives_the_same_aligned_pieces(seed: int) -> None:
    x = np.random.default_rng(0).normal(size=(1000, 3)).astype(np.float32)
    rng = np.random.default_rng(seed)
    edges = [0, *np.sort(rng.choice(np.arange(1, 1000), 20, replace=False)).tolist(), 1000]
    rechunker = Rechunker(30)
    out: list[SignalChunk] = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        out += rechunker.feed(SignalChunk(x[a:b], a, 30000.0, np.arange(a, b) / 30000.0))
    assert [(c.first_sample, c.n_samples) for c in out] == [(k, 30) for k in range(0, 990, 30)]
    assert np.array_equal(np.concatenate([c.data for c in out]), x[:990])
    assert np.array_equal(np.concatenate([c.t_lsl for c in out]), np.arange(990) / 30000.0)


def test_a_gap_flushes_what_was_held() -> None:
    rechunker = Rechunker(30)
    x = np.ones((45, 2), np.float32)
    first = rechunker.feed(SignalChunk(x, 0, 30000.0, np.arange(45) / 3e4))
    assert [c.n_samples for c in first] == [30]
    after_gap = rechunker.feed(SignalChunk(x, 100, 30000.0, np.arange(45) / 3e4, gap_before=55))
    # the 15 held samples come out alone, then the new stream is cut on its own alignment
    assert [(c.first_sample, c.n_samples) for c in after_gap] == [(30, 15), (100, 20)]


def test_pieces_can_end_where_the_plant_ends_a_period() -> None:
    # the plant publishes each 600-sample period less the 30 samples its probe holds back
    rechunker = Rechunker(600, offset=30)
    x = np.zeros((1300, 1), np.float32)
    out = rechunker.feed(SignalChunk(x[:700], 0, 30000.0, np.arange(700) / 3e4))
    out += rechunker.feed(SignalChunk(x[700:], 700, 30000.0, np.arange(700, 1300) / 3e4))
    assert [(c.first_sample, c.n_samples) for c in out] == [(0, 570), (570, 600)]
