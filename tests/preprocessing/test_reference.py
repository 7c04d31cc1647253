"""CommonReference median kernel: bit-identical to the numpy path it replaced, NaN, subsets."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from bci.errors import StageCompatibilityError
from bci.preprocessing import CommonReference
from bci.preprocessing.reference import _numpy_reference
from bci.stream import SignalChunk

SFREQ = 30_000.0
CHANNEL_COUNTS = (1, 2, 3, 4, 31, 32, 96, 384)
CHUNK_SIZES = (1, 300)


def chunk(data: np.ndarray) -> SignalChunk:
    data = np.ascontiguousarray(data, dtype=np.float32)
    return SignalChunk(data, 0, SFREQ, np.arange(len(data)) / SFREQ)


def numpy_oracle(data: np.ndarray, channels: list[int] | None = None) -> np.ndarray:
    """The old np.median / np.nanmedian path; its 'All-NaN slice' warning is expected here."""
    index = None if channels is None else np.asarray(channels, dtype=np.intp)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        return _numpy_reference(data, index, "median")


def random_block(rng: np.random.Generator, n_samples: int, n_channels: int) -> np.ndarray:
    """Noise with a common mode, plus a few repeated values so even counts see ties."""
    x = rng.normal(0.0, 50.0, (n_samples, n_channels)) + rng.normal(0.0, 30.0, (n_samples, 1))
    x = x.astype(np.float32)
    if n_channels >= 4:
        x[:, : n_channels // 4] = np.abs(np.round(x[:, : n_channels // 4] / 40.0)) + 1.0
    return x


def assert_bit_identical(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype == np.float32
    assert a.shape == b.shape
    # Compare bit patterns, so NaN == NaN and 1 ulp differences fail.
    np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize("n_samples", CHUNK_SIZES)
@pytest.mark.parametrize("n_channels", CHANNEL_COUNTS)
def test_median_matches_numpy_bit_for_bit(n_channels: int, n_samples: int) -> None:
    rng = np.random.default_rng(1000 * n_channels + n_samples)
    x = random_block(rng, n_samples, n_channels)
    before = x.copy()
    y = CommonReference("median").process(chunk(x)).data
    assert_bit_identical(y, numpy_oracle(x))
    np.testing.assert_array_equal(x, before)  # the input chunk is left untouched
    assert y is not x


@pytest.mark.parametrize("n_samples", CHUNK_SIZES)
@pytest.mark.parametrize("n_channels", CHANNEL_COUNTS)
def test_median_with_nan_matches_nanmedian(n_channels: int, n_samples: int) -> None:
    rng = np.random.default_rng(7 + 1000 * n_channels + n_samples)
    x = random_block(rng, n_samples, n_channels)
    x[rng.random(x.shape) < 0.15] = np.nan
    x[0, :] = np.nan  # a sample without any finite reference value
    y = CommonReference("median").process(chunk(x)).data
    assert_bit_identical(y, numpy_oracle(x))
    assert np.isnan(y[0]).all()  # documented: an all-NaN reference leaves the sample NaN
    assert np.isfinite(y[~np.isnan(x)]).all()  # NaN spreads neither across channels nor samples


def test_all_nan_sample_gives_no_warning() -> None:
    x = np.full((3, 5), np.nan, np.float32)
    x[1] = [1.0, 2.0, np.nan, 4.0, 8.0]
    y = CommonReference("median").process(chunk(x)).data  # filterwarnings=error would raise
    np.testing.assert_array_equal(y[1], [-2.0, -1.0, np.nan, 1.0, 5.0])
    assert np.isnan(y[[0, 2]]).all()


@pytest.mark.parametrize("n_samples", CHUNK_SIZES)
@pytest.mark.parametrize("n_channels", (4, 32, 96, 384))
def test_median_on_a_channel_subset(n_channels: int, n_samples: int) -> None:
    rng = np.random.default_rng(99 + n_channels + n_samples)
    x = random_block(rng, n_samples, n_channels)
    x[rng.random(x.shape) < 0.05] = np.nan
    for n_ref in (1, 2, n_channels // 2 + 1, n_channels - 1):
        channels = sorted(rng.choice(n_channels, size=max(n_ref, 1), replace=False).tolist())
        y = CommonReference("median", channels=channels).process(chunk(x)).data
        assert_bit_identical(y, numpy_oracle(x, channels))


def test_subset_reference_is_subtracted_from_every_channel() -> None:
    x = np.tile(np.array([1.0, 2.0, 6.0, 100.0, -50.0], np.float32), (4, 1))
    y = CommonReference("median", channels=[0, 1, 2, 3]).process(chunk(x)).data
    # Reference channels 1, 2, 6, 100: median (2 + 6) / 2 = 4, subtracted from all five.
    np.testing.assert_array_equal(y[0], [-3.0, -2.0, 2.0, 96.0, -54.0])


def test_even_count_mean_uses_float32_arithmetic_like_numpy() -> None:
    big = np.float32(3e38)
    x = np.array(
        [
            [big, big, 0.0, big],  # float32 sum of the two middle values overflows to inf
            [np.float32(2**24), 3.0, np.float32(2**24), 1.0],  # float32 rounding of the sum
            [-np.inf, np.inf, 1.0, -1.0],
            [np.inf, np.inf, np.inf, 1.0],
        ],
        np.float32,
    )
    y = CommonReference("median").apply(x)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = numpy_oracle(x)
    assert_bit_identical(y, expected)
    assert np.isinf(big - y[0, 0])  # the reference itself was inf, as in numpy


def test_median_of_heavily_tied_values() -> None:
    rng = np.random.default_rng(5)
    for n_channels in (2, 6, 9, 40, 97):
        x = rng.integers(1, 4, (200, n_channels)).astype(np.float32)
        assert_bit_identical(CommonReference("median").apply(x), numpy_oracle(x))


def test_chunked_equals_one_piece() -> None:
    rng = np.random.default_rng(11)
    x = random_block(rng, 600, 32)
    stage = CommonReference("median")
    pieces = [stage.process(chunk(x[i : i + 30])).data for i in range(0, 600, 30)]
    assert_bit_identical(np.vstack(pieces), stage.process(chunk(x)).data)


def test_float64_block_and_empty_chunk_keep_numpy_behaviour() -> None:
    rng = np.random.default_rng(12)
    x64 = rng.normal(size=(50, 7))
    y = CommonReference("median").apply(x64)  # type: ignore[arg-type]
    assert_bit_identical(y, numpy_oracle(x64))
    empty = np.zeros((0, 7), np.float32)
    assert CommonReference("median").apply(empty).shape == (0, 7)


def test_subset_channel_beyond_block_raises() -> None:
    with pytest.raises(StageCompatibilityError, match="channel 9"):
        CommonReference("median", channels=[0, 9]).apply(np.zeros((4, 5), np.float32))


def test_signed_zeros_equal_numpy_in_value() -> None:
    # Which of -0.0 and +0.0 a selection lands on is implementation-defined (numpy's introselect
    # and ours differ), so only the value is compared here; every other value is bit-identical.
    rng = np.random.default_rng(13)
    x = rng.choice(np.array([0.0, -0.0, 1.0, -1.0, 2.0], np.float32), size=(500, 6))
    np.testing.assert_array_equal(CommonReference("median").apply(x), numpy_oracle(x))
