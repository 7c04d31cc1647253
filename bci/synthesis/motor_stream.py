"""Publish the hand kinematics of a :class:`~bci.synthesis.motor.MotorSource` on LSL, beside its
voltage stream (``bci source motor``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from bci.checks import ensure_float
from bci.synthesis.motor import MotorSource, bin_velocity


class KinematicsPublisher:
    """Publish a :class:`MotorSource`'s hand velocity and position on LSL (``vx, vy, x, y``).

    Sample ``k`` holds the mean velocity over ``[k / rate_hz, (k + 1) / rate_hz)`` and the position
    at its end, stamped with the LSL time of that end on the voltage stream's clock. Call
    :meth:`advance` after each voltage chunk:
    ``publisher.run(on_chunk=lambda data, spikes: kin.advance(publisher, len(data)))`` (the
    publisher calls ``on_chunk`` before it counts the chunk in ``next_sample``).
    """

    def __init__(self, source: MotorSource, name: str, rate_hz: float, source_id: str = "") -> None:
        from bci.acquisition import SignalOutlet, make_stream_info

        self.source = source
        self.rate_hz = ensure_float(rate_hz, "kinematics_hz", minimum=0.0, strict_minimum=True)
        info = make_stream_info(
            name, "Kinematics", 4, self.rate_hz, "float32", f"{source_id}-kinematics",
            labels=["vx", "vy", "x", "y"], units=["cm/s", "cm/s", "cm", "cm"],
            channel_types="Kinematics", model="bci.synthesis.motor",
        )  # fmt: skip
        self.outlet = SignalOutlet(info)
        self.next_k = 0

    def advance(self, publisher: Any, chunk_samples: int = 0) -> None:
        """Push every kinematics sample whose period the voltage stream has completed (up to
        ``publisher.next_sample + chunk_samples``)."""
        if publisher.t0 is None:
            return
        end_s = (publisher.next_sample + chunk_samples) / self.source.sfreq
        n = int(end_s * self.rate_hz + 1e-9) - self.next_k
        if n <= 0:
            return
        bin_s = 1.0 / self.rate_hz
        vel = bin_velocity(self.source.trajectory, self.next_k, n, bin_s)
        pos, _ = self.source.trajectory.state((self.next_k + 1 + np.arange(n)) * bin_s)
        self.next_k += n
        self.outlet.push(np.hstack([vel, pos]), publisher.t0 + self.next_k * bin_s)
