"""A run folder loaded for analysis: the session as a ``neo.Block``, its summary, and what is missing.

:func:`load_run` never fails on a damaged run folder: it loads what is there and lists what is not
(:attr:`RunData.missing`), so the report can say which numbers could not be computed and why.

- ``recording.xdf`` is loaded with :func:`bci.session.load.load`; a file cut short by a crash is
  first repaired into a temporary copy (:func:`bci.session.repair.repair`), keeping every whole
  sample; the problems :func:`bci.session.xdf_read.scan_xdf` names are listed as missing.
- Without a readable ``recording.xdf``, ``session.nix`` is used if present.
- ``summary.json`` (the runner's metrics: controller, loop latency, energy...) and ``config.yaml``
  are read when present.

Which objects are which (the conventions of :mod:`bci.session.load` and the plant's streams):
sorted units are spike trains from a stream of type ``Spikes``; ground-truth units come from any
other spike stream (the plant's or the synthetic source's markers); the voltage recording is the
AnalogSignal in volts with the most channels; the plant's biomarkers are the AnalogSignals of a
``Biomarkers`` stream; stimulation pulses are the Event whose markers start with ``stim``/``pulse``.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import neo
import numpy as np
import quantities as pq

from bci.errors import BCIError

__all__ = ["RunData", "load_run"]


@dataclass
class RunData:
    """One run folder, loaded (see the module docstring)."""

    path: Path
    name: str
    block: neo.Block | None
    summary: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    missing: list[str] = field(default_factory=list)
    #: what the Block was loaded from
    source: str = ""

    @property
    def segment(self) -> neo.Segment | None:
        return self.block.segments[0] if self.block is not None and self.block.segments else None

    def _trains(self, sorted_units: bool) -> list[neo.SpikeTrain]:
        seg = self.segment
        if seg is None:
            return []
        out = [
            st
            for st in seg.spiketrains
            if (str(st.annotations.get("lsl_type", "")).lower() == "spikes") == sorted_units
        ]
        return sorted(out, key=lambda st: int(st.annotations.get("unit_id", 0)))

    @property
    def sorted_units(self) -> list[neo.SpikeTrain]:
        """Spike trains of the online sorter (streams of type ``Spikes``), sorted units only."""
        return [st for st in self._trains(True) if int(st.annotations.get("unit_id", 0)) >= 0]

    @property
    def unsorted_spikes(self) -> int:
        """Spikes the sorter left unassigned (unit -1, e.g. locked to stimulation pulses)."""
        return sum(
            len(st) for st in self._trains(True) if int(st.annotations.get("unit_id", 0)) < 0
        )

    def online_from_s(self) -> float:
        """When the sorter started labelling: the runner's ``t_online_lsl`` on the recording's time
        axis, else the first spike of the sorter's stream, else 0."""
        seg = self.segment
        t_online = (self.summary or {}).get("t_online_lsl")
        if seg is not None and isinstance(t_online, (int, float)):
            return max(0.0, float(t_online) - float(seg.annotations.get("lsl_time_zero", 0.0)))
        firsts = [float(st.times[0].rescale(pq.s)) for st in self._trains(True) if len(st)]
        return min(firsts, default=0.0)

    @property
    def ground_truth_units(self) -> list[neo.SpikeTrain]:
        """Spike trains of the simulated source's ground truth."""
        return self._trains(False)

    @property
    def voltage(self) -> neo.AnalogSignal | None:
        """The voltage recording (the AnalogSignal in volts with the most channels)."""
        seg = self.segment
        if seg is None:
            return None
        volt = pq.V.simplified.dimensionality
        volts = [a for a in seg.analogsignals if a.units.simplified.dimensionality == volt]
        return max(volts, key=lambda a: a.shape[1] * a.shape[0], default=None)

    def biomarker(self, label: str) -> tuple[np.ndarray, np.ndarray] | None:
        """``(times_s, values)`` of a channel of the plant's biomarker stream, or None."""
        seg = self.segment
        if seg is None:
            return None
        for sig in seg.analogsignals:
            if str(sig.annotations.get("lsl_type", "")).lower() != "biomarkers":
                continue
            names = list(sig.array_annotations.get("channel_names", []))
            if label in names:
                t = sig.times.rescale(pq.s).magnitude
                return t, np.asarray(sig.magnitude[:, names.index(label)], dtype=np.float64)
        return None

    @property
    def pulses(self) -> neo.Event | None:
        """The stimulation-pulse markers (``stim sample=... amp=...``), or None."""
        seg = self.segment
        if seg is None:
            return None
        for ev in seg.events:
            labels = [str(x) for x in ev.labels]
            if labels and {lab.split(" ", 1)[0].lower() for lab in labels} <= {"stim", "pulse"}:
                return ev
        return None

    @property
    def duration_s(self) -> float:
        seg = self.segment
        if seg is None:
            return 0.0
        return float(seg.annotations.get("duration_s", 0.0))


def _read_json(path: Path, missing: list[str]) -> dict[str, Any] | None:
    if not path.is_file():
        missing.append(
            f"{path.name} is missing: the runner's metrics (loop latency, energy) are not shown"
        )
        return None
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as err:
        missing.append(f"{path.name} is unreadable ({err})")
        return None


def _read_yaml(path: Path, missing: list[str]) -> dict[str, Any] | None:
    import yaml

    if not path.is_file():
        missing.append(f"{path.name} is missing")
        return None
    try:
        return dict(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except (yaml.YAMLError, TypeError, ValueError) as err:
        missing.append(f"{path.name} is unreadable ({err})")
        return None


def _load_recording(xdf: Path, missing: list[str]) -> tuple[neo.Block | None, str]:
    from bci.session.load import load
    from bci.session.repair import repair
    from bci.session.xdf_read import scan_xdf

    try:
        scan = scan_xdf(xdf)
    except BCIError as err:
        missing.append(f"{xdf.name} is unreadable: {err}")
        return None, ""
    problems = scan.problems()
    if scan.truncated is None:
        try:
            return load(xdf), xdf.name
        except BCIError as err:
            missing.append(f"{xdf.name} could not be loaded: {err}")
            return None, ""
    missing.extend(f"{xdf.name}: {p}" for p in problems)
    with tempfile.TemporaryDirectory(prefix="bci-analysis-") as tmp:
        fixed = Path(tmp) / "recording.xdf"
        try:
            repair(xdf, fixed)
            block = load(fixed)
        except BCIError as err:
            missing.append(f"{xdf.name} could not be repaired: {err}")
            return None, ""
    missing.append(
        f"{xdf.name} was cut short: analysed the whole samples up to byte {scan.complete_until} "
        f"of {scan.size}"
    )
    return block, f"{xdf.name} (repaired copy)"


def load_run(path: str | Path) -> RunData:
    """Load a run folder (or a single ``.xdf`` / ``.nix`` file) for analysis; never raises on damage.

    Raises
    ------
    bci.session.load.RecordingNotFoundError
        Only if ``path`` does not exist at all.
    """
    from bci.session.load import RecordingNotFoundError
    from bci.session.nix import load_nix

    p = Path(path).expanduser()
    if not p.exists():
        raise RecordingNotFoundError(f"Run folder {p} does not exist.")
    missing: list[str] = []
    run_dir = p if p.is_dir() else p.parent
    xdf = p / "recording.xdf" if p.is_dir() else p
    block, source = None, ""
    if xdf.suffix == ".xdf" and xdf.is_file():
        block, source = _load_recording(xdf, missing)
    elif p.is_dir():
        missing.append("recording.xdf is missing")
    nix = p / "session.nix" if p.is_dir() else p
    if block is None and nix.suffix == ".nix" and nix.is_file():
        try:
            block, source = load_nix(nix), nix.name
        except BCIError as err:
            missing.append(f"{nix.name} could not be loaded: {err}")
    if block is None:
        missing.append("no recording could be loaded: only the summary is analysed")
    summary = config = None
    if p.is_dir():
        summary = _read_json(run_dir / "summary.json", missing)
        config = _read_yaml(run_dir / "config.yaml", missing)
    return RunData(p, p.name if p.is_dir() else p.stem, block, summary, config, missing, source)
