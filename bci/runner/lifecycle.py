"""How a run starts and ends around the loop: run folder, streams, recorder, safe stop.

:class:`RunLifecycle` is the set-up and tear-down half of :class:`bci.runner.loop.SessionRunner` (a
mixin, like :class:`~bci.runner.report.RunReport`, over the attributes the runner sets): it writes
``config.yaml``, opens the loop's outlets and the plant's biomarker and pulse inlets, starts and
watches the recorder process, saves what calibration fitted, and on the way out sends the safe
state first, then stops the source and the recorder and writes ``session.nix``. ``run()``, its
signal handlers and the loop itself stay in :mod:`bci.runner.loop`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pylsl

from bci.errors import BCIError
from bci.runner.chain import StageChain
from bci.runner.commands import CommandPath
from bci.runner.outlets import LoopOutlets
from bci.runner.parts import LoopParts
from bci.runner.pulses import PulseFeed
from bci.runner.rows import Rows
from bci.runner.sources import SourceSession
from bci.runner.truth import TruthFeed
from bci.session.config import ControllerConfig, SessionConfig
from bci.session.recorder import RecorderError
from bci.session.run_folder import write_config

__all__ = ["RunLifecycle", "drain"]


class RunLifecycle:
    """Set-up and tear-down of a run (attributes set by the runner)."""

    config: SessionConfig
    controller_config: ControllerConfig | None
    label: str | None
    run_id: str
    run_dir: Path | None
    parts: LoopParts
    commands: CommandPath
    limiter_name: str
    outlets: LoopOutlets | None
    chain: StageChain | None
    events: list[str]
    bio_values: Rows
    bio_stamps: Rows
    pulse_feed: PulseFeed | None
    decoded_names: list[str]
    truth: TruthFeed | None
    recorder: Any
    phases: dict[str, float]
    _bio_inlet: pylsl.StreamInlet | None
    _t_phase: float

    def _write_config(self) -> None:
        assert self.run_dir is not None
        resolved = self.config.resolved()
        if self.controller_config is not None:
            resolved["controller"] = self.controller_config.model_dump(mode="json")
        resolved["compare"] = []
        write_config(
            self.run_dir,
            {
                "session": resolved,
                "stages": self.parts.describe(),
                "run": {"id": self.run_id, "label": self.label},
            },
        )

    # ------------------------------------------------------------------ set-up
    def _open_outlets(self, source: SourceSession, source_id: str) -> None:
        decoder = self.parts.decoder
        labels = None
        if decoder is not None:
            spec = decoder.output_spec
            if spec is not None:
                labels = list(spec.channel_names)
            else:  # prepared after calibration (a sorter before it): the model names its outputs
                labels = list(getattr(decoder, "output_names", ()))
            self.decoded_names = list(labels)
            if source.truth_name is not None:
                self.truth = TruthFeed(source.truth_name)
        stimulator = None
        if self.parts.limiter is not None:
            if source.plant is not None:
                stimulator = (source.plant.command_stream, self.limiter_name)
            else:
                stream = self.config.stimulator.command_stream
                assert stream is not None
                stimulator = (stream, self.limiter_name)
        self.outlets = LoopOutlets(self.run_id, labels, stimulator, self.parts.session_token)
        self.commands.outlets = self.outlets
        if source.plant is not None and stimulator is not None:
            # the plant must listen before the first command, or lockstep never starts
            if not self.outlets.wait_for_stimulator(60.0):
                raise BCIError("The plant did not connect to the command stream within 60 s.")
        if source.plant is not None:
            found = pylsl.resolve_byprop("source_id", source.plant.biomarker_source_id, 1, 10.0)
            if found:
                self._bio_inlet = pylsl.StreamInlet(found[0], max_buflen=600, recover=False)
                self._bio_inlet.open_stream(timeout=10.0)
            assert self.chain is not None
            self.pulse_feed = PulseFeed(
                source.plant.stim_source_id,
                self.chain.stages,
                # lockstep: the loop hears the raw stream from the plant's sample 0
                sample_offset=0 if source.plant.lockstep else None,
            )

    def _start_recorder(self, source: SourceSession, source_id: str) -> Any:
        from bci.session.recorder_process import spawn_recorder

        assert self.run_dir is not None and self.outlets is not None
        ids = list(dict.fromkeys([*source.record_source_ids, source_id, *self.outlets.source_ids]))
        return spawn_recorder(
            self.run_dir / "recording.xdf",
            source_ids=ids,
            names=[*source.record_names, *self.config.recording.extra_streams],
            timeout_s=10.0,
            extra_args=[
                "--flush-interval",
                repr(self.config.recording.flush_interval_s),
                "--status-interval",
                "0",
            ],
        )

    def _phase(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = round(now - self._t_phase, 3)
        self._t_phase = now

    def _event(self, text: str, keep: bool = True) -> None:
        """Publish an event on the loop's event stream; ``keep`` it for the summary too."""
        if keep:
            self.events.append(text)
        if self.outlets is not None:
            self.outlets.event(text)

    def _check_recorder(self) -> None:
        """Stop the run (safe state first, in :meth:`run`) if the recorder process has died.

        A session whose recording stopped (disk full, killed) must not go on stimulating
        unrecorded.
        """
        recorder = self.recorder
        if recorder is None:
            return
        code = recorder.process.poll()
        if code is not None:
            last = recorder.output[-1].strip() if recorder.output else "no output"
            raise RecorderError(
                f"The recorder stopped during the session (exit code {code}: {last}); "
                "stopping the loop with stimulation off. What it wrote up to then is in "
                f"{recorder.path}."
            )

    def _poll_biomarkers(self) -> None:
        if self.truth is not None:
            self.truth.poll()
        inlet = self._bio_inlet
        if inlet is None:
            return
        try:
            values, stamps = inlet.pull_chunk(timeout=0.0)
        except pylsl.util.LostError:
            self._bio_inlet = None
            return
        if stamps:
            self.bio_values.extend(values)
            self.bio_stamps.extend(stamps)

    def _save_calibration(self) -> None:
        assert self.run_dir is not None and self.chain is not None
        for i, stage in enumerate(self.chain.stages[: self.chain.ready]):
            save = getattr(stage, "save", None)
            if callable(save) and getattr(stage, "is_fitted", False):
                save(self.run_dir / f"calibration_{i}_{type(stage).__name__}.npz")
        self._write_config()  # again: to_dict() now names the saved templates

    # ------------------------------------------------------------------ the end
    def _send_safe_state(self, status: str) -> None:
        """Tell the stimulator to stop: the first thing on the way out of a run, whatever ended it
        (closing the source's inlet, for one, can wait on its clock thread)."""
        if self.outlets is not None and self.outlets.stimulator is not None:
            try:
                self.commands.safe_state()
                self._event(f"safe state sent ({status})")
            except Exception as err:  # the stimulator must still be told; say why it was not
                self.events.append(f"safe state FAILED: {err}")

    def _shut_down(
        self,
        source: SourceSession | None,
        lsl: Any,
        recorder: Any,
        status: str,
        error: str | None,
    ) -> dict[str, Any]:
        """After the safe state (:meth:`_send_safe_state`): our inlets, the source, the recorder,
        the NIX copy."""
        if self.outlets is not None:
            self._event(f"stop: {status}" + (f": {error}" if error else ""))
        time.sleep(0.3 + self.config.recording.flush_interval_s)  # the recorder pulls the last
        self._poll_biomarkers()
        # our inlets go first, so the source's outlets do not close under them
        if lsl is not None:
            lsl.close()
        if self._bio_inlet is not None:
            self._bio_inlet.close_stream()
            self._bio_inlet = None
        if self.truth is not None:
            self.truth.close()
        if self.pulse_feed is not None:
            self.pulse_feed.close()
        plant_stats: dict[str, Any] = {}
        if source is not None:
            plant_stats = source.stop()
        self._phase("stop_source")
        if recorder is not None:
            try:
                recorder.stop()
            except BCIError as err:
                self.events.append(f"recorder: {err}")
        if self.outlets is not None:
            self.outlets.close()
        self._phase("stop_recorder")
        if recorder is not None and self.config.recording.nix and self.run_dir is not None:
            from bci.session.nix import write_run_nix

            try:
                write_run_nix(self.run_dir)
            except BCIError as err:
                self.events.append(f"session.nix not written: {err}")
            self._phase("write_nix")
        return plant_stats


def drain(lsl: Any) -> int:
    """Pull and drop everything waiting in the source; return how many samples."""
    n = 0
    while (chunk := lsl.pull(timeout=0.0)) is not None:
        n += chunk.n_samples
    return n
