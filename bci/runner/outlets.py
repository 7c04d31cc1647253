"""The loop's own LSL streams, so the recorder keeps everything the loop did.

==================== ============ ==============================================================
stream               type         content
==================== ============ ==============================================================
``<run>-spikes``     Spikes       one sample per sorted spike: unit, channel, sample_index (on the
                                  source's clock), amplitude (uV); stamped with the spike's time
``<run>-decoded``    Decoded      the decoder's outputs, one sample per decoded bin
``<run>-controller`` StimCommands the controller's commands *before* the limiter (device units)
``<stimulator>``     StimCommands the commands that passed the limiter, on the stimulator's stream
``<run>-events``     Markers      calibration, start, stop, safe state, limiter changes, errors
==================== ============ ==============================================================

Command streams are :mod:`stimulation.plant.commands`'s (``amplitude_ma``, ``frequency_hz``,
``pulse_width_us``, ``seq``, ``t_issue``; the session token in the stream's metadata); stamps are
the push time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pylsl

from bci.acquisition import MarkerOutlet, make_stream_info
from bci.stream import StimCommand
from stimulation.plant.commands import command_stream_info, command_to_sample

__all__ = ["LoopOutlets", "SPIKE_CHANNELS"]

#: Channels of the ``-spikes`` stream.
SPIKE_CHANNELS: tuple[str, ...] = ("unit", "channel", "sample_index", "amplitude")


class LoopOutlets:
    """Open the loop's streams (module docstring); ``run_id`` prefixes names and source_ids.

    Parameters
    ----------
    run_id : str
        Unique prefix of this run's streams.
    decoded_labels : sequence of str or None
        Channel labels of the decoder's outputs (None: no decoder, no ``-decoded`` stream).
    stimulator : (stream name, source_id) or None
        The command stream the stimulator obeys and the source_id it trusts (None: no controller).
    session_token : str
        Written into the command streams' metadata (the stimulator checks it).
    """

    def __init__(
        self,
        run_id: str,
        decoded_labels: Sequence[str] | None,
        stimulator: tuple[str, str] | None,
        session_token: str = "",
    ) -> None:
        self.run_id = run_id
        self.spikes = pylsl.StreamOutlet(
            make_stream_info(
                f"{run_id}-spikes",
                "Spikes",
                len(SPIKE_CHANNELS),
                0.0,
                "double64",
                f"{run_id}-spikes",
                labels=SPIKE_CHANNELS,
                units=["", "", "", "uV"],
                channel_types="Spikes",
                model="bci.runner",
            )
        )
        self.decoded: pylsl.StreamOutlet | None = None
        if decoded_labels is not None:
            labels = list(decoded_labels) or ["output0"]
            self.decoded = pylsl.StreamOutlet(
                make_stream_info(
                    f"{run_id}-decoded",
                    "Decoded",
                    len(labels),
                    0.0,
                    "float32",
                    f"{run_id}-decoded",
                    labels=labels,
                    units="",
                    channel_types="Decoded",
                    model="bci.runner",
                )
            )
        self.controller: pylsl.StreamOutlet | None = None
        self.stimulator: pylsl.StreamOutlet | None = None
        self.stimulator_source_id = ""
        if stimulator is not None:
            self.controller = pylsl.StreamOutlet(
                command_stream_info(f"{run_id}-controller", f"{run_id}-controller", session_token)
            )
            name, source_id = stimulator
            self.stimulator = pylsl.StreamOutlet(
                command_stream_info(name, source_id, session_token)
            )
            self.stimulator_source_id = source_id
        self.events = MarkerOutlet(
            make_stream_info(
                f"{run_id}-events",
                "Markers",
                1,
                0.0,
                "string",
                f"{run_id}-events",
                labels=["event"],
                units="",
                model="bci.runner",
            )
        )
        self.counts = {"spikes": 0, "decoded": 0, "controller": 0, "stimulator": 0, "events": 0}

    @property
    def source_ids(self) -> list[str]:
        """source_ids of every stream opened here (what the recorder records)."""
        ids = [f"{self.run_id}-spikes", f"{self.run_id}-events"]
        if self.decoded is not None:
            ids.append(f"{self.run_id}-decoded")
        if self.controller is not None:
            ids += [f"{self.run_id}-controller", self.stimulator_source_id]
        return ids

    def push_spikes(self, rows: npt.NDArray[np.float64], stamps: npt.NDArray[np.float64]) -> None:
        """Push ``rows`` (n, 4): unit, channel, sample_index, amplitude; one stamp per spike."""
        if rows.shape[0]:
            self.spikes.push_chunk(np.ascontiguousarray(rows), np.ascontiguousarray(stamps))
            self.counts["spikes"] += int(rows.shape[0])

    def push_decoded(
        self, values: npt.NDArray[np.float32], stamps: npt.NDArray[np.float64]
    ) -> None:
        if self.decoded is not None and values.shape[0]:
            self.decoded.push_chunk(
                np.ascontiguousarray(values, dtype=np.float32), np.ascontiguousarray(stamps)
            )
            self.counts["decoded"] += int(values.shape[0])

    def push_controller(self, command: StimCommand) -> None:
        """The controller's command as it came, before the limiter."""
        if self.controller is not None:
            self.controller.push_sample(command_to_sample(command), pylsl.local_clock())
            self.counts["controller"] += 1

    def push_stimulator(self, command: StimCommand) -> float:
        """Send a limited command to the stimulator; return the LSL time of the push."""
        if self.stimulator is None:
            raise RuntimeError("This session has no stimulator.")
        t = pylsl.local_clock()
        self.stimulator.push_sample(command_to_sample(command), t)
        self.counts["stimulator"] += 1
        return float(t)

    def event(self, text: str) -> None:
        self.events.push(text, pylsl.local_clock())
        self.counts["events"] += 1

    def wait_for_stimulator(self, timeout_s: float) -> bool:
        """Wait until the stimulator (and the recorder) listen to the command stream."""
        if self.stimulator is None:
            return True
        return bool(self.stimulator.wait_for_consumers(timeout_s))

    def close(self) -> None:
        for attr in ("spikes", "decoded", "controller", "stimulator"):
            setattr(self, attr, None)
        self.events.outlet = None  # liblsl closes an outlet when its last reference goes
