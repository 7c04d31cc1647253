"""What the loop measures: latency and deadlines, the stimulation delivered, the plant's symptoms.

Loop latency of a command: from the arrival of the newest sample that informed it
(:attr:`bci.stream.SignalChunk.t_arrival` of the chunk whose processing produced it, LSL clock) to
its push on the stimulator's LSL stream. A command later than the deadline is a miss; a chunk that
took longer to process than the signal it holds is an overrun (the loop falls behind).

The plant's ``-biomarkers`` stream (one sample per control period, stamped at the period's end)
says what the plant did: the windowed error index and GPi beta, and the stimulation it applied
(device units: mA, Hz, us).
:func:`plant_outcome` turns those samples into the session's numbers; the tests recompute them from
the recording with the same function.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bci.runner.rows import Rows

__all__ = ["IMPEDANCE_OHM", "LatencyLog", "decoder_tracking", "plant_outcome"]

#: Electrode impedance for energies (about 1 kOhm is typical of DBS leads).
IMPEDANCE_OHM = 1000.0


class LatencyLog:
    """Loop latencies (ms) of every command, deadline misses and chunk overruns.

    Every value is kept (:class:`bci.runner.rows.Rows`; :meth:`spill_into` bounds the memory of a
    long session by moving full blocks to files).
    """

    def __init__(self, deadline_ms: float) -> None:
        self.deadline_ms = float(deadline_ms)
        self._values = Rows()
        self.misses = 0
        self.overruns = 0
        #: per chunk: arrival to the end of its processing (ms), with or without a command
        self._chunk_ms = Rows()
        #: per chunk: CPU time of the loop's thread on it (ms): its own work, whatever else the
        #: machine runs (wall latency also measures the other processes' load)
        self._chunk_cpu_ms = Rows()

    @property
    def count(self) -> int:
        return len(self._values)

    @property
    def chunks(self) -> int:
        return len(self._chunk_ms)

    def spill_into(self, folder: Path) -> None:
        """Keep the full blocks of values in files in ``folder`` (module :mod:`bci.runner.rows`)."""
        self._values.spill_into(Path(folder) / "latency_ms.f64")
        self._chunk_ms.spill_into(Path(folder) / "chunk_ms.f64")
        self._chunk_cpu_ms.spill_into(Path(folder) / "chunk_cpu_ms.f64")

    def add(self, latency_ms: float) -> None:
        self._values.append(latency_ms)
        if latency_ms > self.deadline_ms:
            self.misses += 1

    def chunk(
        self, compute_s: float, chunk_s: float, latency_ms: float, cpu_ms: float = float("nan")
    ) -> None:
        """One chunk processed: its compute time, its length, arrival to done (ms), the loop
        thread's CPU time on it (ms)."""
        self._chunk_ms.append(latency_ms)
        self._chunk_cpu_ms.append(cpu_ms)
        if compute_s > chunk_s:
            self.overruns += 1

    @property
    def values(self) -> npt.NDArray[np.float64]:
        return self._values.array()

    def since(self, index: int) -> npt.NDArray[np.float64]:
        """The latencies of commands ``index`` on."""
        return self._values.since(index)

    def cpu_since(self, index: int) -> npt.NDArray[np.float64]:
        """The loop thread's CPU time (ms) on chunks ``index`` on."""
        return self._chunk_cpu_ms.since(index)

    @property
    def chunk_cpu_ms(self) -> npt.NDArray[np.float64]:
        return self._chunk_cpu_ms.array()

    def percentiles(self, recent: int | None = None) -> tuple[float, float]:
        """p50 and p99 (ms) of all commands, or of the last ``recent``; NaN when none."""
        v = self.values if recent is None else self.since(self.count - recent)
        if v.size == 0:
            return float("nan"), float("nan")
        p50, p99 = np.percentile(v, [50, 99])
        return float(p50), float(p99)

    def summary(self) -> dict[str, Any]:
        v = self.values
        p50, p99 = self.percentiles()
        c = self._chunk_ms.array()
        c50, c99 = np.percentile(c, [50, 99]) if c.size else (float("nan"), float("nan"))
        cpu = self._chunk_cpu_ms.array()
        cpu = cpu[np.isfinite(cpu)]
        u50, u99 = np.percentile(cpu, [50, 99]) if cpu.size else (float("nan"), float("nan"))
        return {
            "commands": int(v.size),
            "p50_ms": p50,
            "p99_ms": p99,
            "max_ms": float(v.max()) if v.size else float("nan"),
            "mean_ms": float(v.mean()) if v.size else float("nan"),
            "deadline_ms": self.deadline_ms,
            "deadline_misses": self.misses,
            "chunks": self.chunks,
            "chunk_overruns": self.overruns,
            "chunk_p50_ms": float(c50),
            "chunk_p99_ms": float(c99),
            "chunk_cpu_p50_ms": float(u50),
            "chunk_cpu_p99_ms": float(u99),
            "histogram": self.histogram(),
        }

    def histogram(self) -> dict[str, list[float]]:
        """Latencies of every command in log-spaced bins, 10 us to 10 s (``bci analyze`` plots it)."""
        edges = np.logspace(-2, 4, 61)
        counts, _ = np.histogram(np.clip(self.values, edges[0], edges[-1]), bins=edges)
        return {"edges_ms": edges.tolist(), "counts": counts.astype(int).tolist()}


def plant_outcome(
    labels: list[str],
    values: npt.NDArray[np.floating[Any]],
    stamps: npt.NDArray[np.float64],
    t_online: float,
    window_s: float,
    control_period_s: float,
) -> dict[str, Any]:
    """The session's numbers from the plant's biomarker samples after ``t_online`` (LSL time).

    Stimulation (energy, time on stimulation, mean amplitude and frequency) counts every period
    that ended after ``t_online``; the windowed biomarkers (error index, GPi beta) only periods whose
    window lies entirely after it (end >= ``t_online + window_s``), so calibration does not leak in.
    Energy is the delivered pulse trains' mean power into 1 kOhm (as
    :meth:`stimulation.pulses.PulseTrain.energy_j`: I^2 R x pulse width per monophasic pulse) times
    the time.
    """
    col = {name: i for i, name in enumerate(labels)}
    values = np.asarray(values, dtype=np.float64).reshape(-1, len(labels))
    stamps = np.asarray(stamps, dtype=np.float64)
    # stamps are period ends; half a period of slack absorbs clock corrections of microseconds
    half = 0.5 * control_period_s
    stim = stamps > t_online + half
    settled = stamps > t_online + window_s - half
    amp_ma = values[stim, col["amplitude_ma"]]
    freq = values[stim, col["frequency_hz"]]
    width = values[stim, col["pulse_width_us"]]
    # I^2 R PW per pulse (monophasic, 1 kOhm) x pulse rate x period: the train's mean power over
    # each period, so a period is not charged 3 pulses of 130 Hz when it holds 2.6 on average
    per_pulse_j = (amp_ma * 1e-3) ** 2 * IMPEDANCE_OHM * width * 1e-6
    energy = float(np.sum(per_pulse_j * freq) * control_period_s)
    on = amp_ma > 0

    def _mean(name: str) -> float:
        x = values[settled, col[name]]
        x = x[np.isfinite(x)]
        return float(x.mean()) if x.size else float("nan")

    return {
        "periods": int(stim.sum()),
        "online_s": float(stim.sum() * control_period_s),
        "error_index": _mean("error_index"),
        "gpi_beta": _mean("beta_gpi"),
        "energy_j": float(energy),
        "time_on_stim": float(on.mean()) if on.size else float("nan"),
        "mean_amplitude_ma": float(amp_ma.mean()) if amp_ma.size else float("nan"),
        "mean_frequency_hz": float(freq[on].mean()) if on.any() else 0.0,
    }


def decoder_tracking(
    decoded: npt.NDArray[np.float64],
    decoded_t: npt.NDArray[np.float64],
    truth: npt.NDArray[np.float64],
    truth_t: npt.NDArray[np.float64],
    t_from: float,
) -> dict[str, Any]:
    """How the decoded symptom (first output) follows the true one (GPi beta of the plant).

    Each decoded value is paired with the first true sample stamped at or after it (the plant's
    windowed biomarker for the period that holds the decoded bin's end); pairs before ``t_from``
    and with a NaN are left out. Returns Pearson's r, R2 (1 - SSE/SST of the true values) and the
    number of pairs.
    """
    decoded = np.asarray(decoded, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    truth_t = np.asarray(truth_t, dtype=np.float64)
    if decoded.size == 0 or truth.size == 0:
        return {"pairs": 0, "r": float("nan"), "r2": float("nan")}
    idx = np.searchsorted(truth_t, np.asarray(decoded_t, dtype=np.float64) - 1e-6)
    ok = (idx < truth.size) & (np.asarray(decoded_t) >= t_from)
    d = decoded[ok]
    y = truth[idx[ok]]
    finite = np.isfinite(d) & np.isfinite(y)
    d, y = d[finite], y[finite]
    if d.size < 3 or np.std(d) == 0 or np.std(y) == 0:
        return {"pairs": int(d.size), "r": float("nan"), "r2": float("nan")}
    r = float(np.corrcoef(d, y)[0, 1])
    r2 = float(1.0 - np.sum((y - d) ** 2) / np.sum((y - y.mean()) ** 2))
    return {"pairs": int(d.size), "r": r, "r2": r2}
