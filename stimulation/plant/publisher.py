"""One control period of the plant onto its LSL streams, each item when its stamp is due.

:class:`PeriodPublisher` turns what :class:`~stimulation.plant.bridge.PlantBridge` simulated for a
period (the probe's voltage, the recorded cells' spikes, the DBS pulse onsets, the biomarkers and
the stimulation applied) into pushes onto the four outlets of
:func:`~stimulation.plant.streams.make_plant_outlets`, stamped on the ``-raw`` sample axis
(sample ``n`` at ``t0 + n / sfreq``). In lockstep each push goes out at once; in real time it
waits in a queue ordered by stamp until :meth:`PeriodPublisher.flush` is called at or after its
stamp. The bridge decides when to simulate and when to flush; this module only formats and holds.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from functools import partial

import numpy as np
import numpy.typing as npt

from bci.stream.chunks import StimCommand
from stimulation.plant.probe import ProbeChunk
from stimulation.plant.record import PlantRecord
from stimulation.plant.streams import PlantOutlets
from stimulation.pulses import PulseTrain

__all__ = ["PeriodPublisher"]


class PeriodPublisher:
    """Format a period's output for the plant's streams and push it when it is due.

    Parameters
    ----------
    outlets : PlantOutlets
        The ``-raw``, ``-spikes``, ``-stim`` and ``-biomarkers`` outlets.
    cells : int array
        Index in its nucleus of each recorded cell (the ``cell=`` of a spike marker).
    sfreq : float
        Sample rate of ``-raw`` (Hz).
    chunk_samples : int
        Samples per ``-raw`` push.
    channel_format : str
        ``"float32"`` or ``"int16"`` (then values are divided by ``scale_uv_per_bit``).
    scale_uv_per_bit : float
        uV per count of an int16 ``-raw``.
    lockstep : bool
        Push at once (no queue).
    """

    def __init__(
        self,
        outlets: PlantOutlets,
        cells: npt.NDArray[np.integer],
        *,
        sfreq: float,
        chunk_samples: int,
        channel_format: str,
        scale_uv_per_bit: float,
        lockstep: bool,
    ) -> None:
        self.outlets = outlets
        self.cells = cells
        self.sfreq = sfreq
        self.chunk_samples = chunk_samples
        self.channel_format = channel_format
        self.scale_uv_per_bit = scale_uv_per_bit
        self.lockstep = lockstep
        #: pushes waiting for their stamp: (due, order, push), a heap
        self.outbox: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()

    def publish(
        self,
        t0: float,
        t_origin_s: float,
        rec: PlantRecord,
        chunk: ProbeChunk,
        command: StimCommand,
        train: PulseTrain,
        features: npt.NDArray[np.floating],
        command_seq: int,
        pd_state: float = float("nan"),
    ) -> None:
        """Queue (or push, in lockstep) everything of one period.

        ``t0`` is the LSL time of sample 0 of ``-raw``, ``t_origin_s`` the model time it stands
        for; ``command`` and ``train`` are the stimulation applied during the period (device and
        model units), ``features`` the monitor's biomarkers at its end, ``pd_state`` the plant's
        state at its end.
        """
        sfreq = self.sfreq
        data = chunk.data
        if self.channel_format == "int16":
            data = data / np.float32(self.scale_uv_per_bit)
        raw, spikes, stim = self.outlets.raw, self.outlets.spikes, self.outlets.stim
        for lo in range(0, data.shape[0], self.chunk_samples):
            piece = data[lo : lo + self.chunk_samples]
            stamp = t0 + (chunk.first_sample + lo + piece.shape[0] - 1) / sfreq
            self.send(stamp, partial(raw.push, piece, stamp))
        for s in chunk.spikes:
            unit = int(s["unit_index"])
            marker = (
                f"unit={unit} ch={int(s['channel_index'])} sample={int(s['sample_index'])} "
                f"amp={float(s['amplitude']):.1f} cell={int(self.cells[unit])}"
            )
            stamp = t0 + int(s["sample_index"]) / sfreq
            self.send(stamp, partial(spikes.push, marker, stamp))
        for onset, amp in zip(chunk.pulse_samples, chunk.pulse_amplitudes, strict=True):
            marker = f"stim sample={int(onset)} amp={float(amp):g} amp_ma={command.amplitude_ma:g}"
            stamp = t0 + int(onset) / sfreq
            self.send(stamp, partial(stim.push, marker, stamp))
        values = np.concatenate(
            [
                features,
                [
                    command.amplitude_ma,
                    train.amplitude,
                    command.frequency_hz,
                    command.pulse_width_us,
                    command_seq,
                    pd_state,
                ],
            ]
        ).astype(np.float32)[None, :]
        stamp = t0 + (rec.t_stop_s - t_origin_s)
        self.send(stamp, partial(self.outlets.biomarkers.push, values, stamp))

    def send(self, due: float, push: Callable[[], None]) -> None:
        """Push now (lockstep) or once ``due`` has come (real time)."""
        if self.lockstep:
            push()
        else:
            heapq.heappush(self.outbox, (due, next(self._order), push))

    def flush(self, now: float) -> None:
        """Push, in stamp order, everything due at or before ``now``."""
        while self.outbox and self.outbox[0][0] <= now:
            _, _, push = heapq.heappop(self.outbox)
            push()
