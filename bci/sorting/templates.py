"""Unit templates: the product of calibration, what online matching compares spikes with.

Templates live in units of each channel's noise sigma (the traces are divided by the calibration
noise before detection and matching), so a template's squared norm is directly its detectability
against white noise of unit variance.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.npyio import NpzFile

from bci.sorting.errors import SortingError, TemplateFileError

#: Format version of saved template banks; bump when the file layout changes.
BANK_FORMAT = 1


@dataclass
class TemplateBank:
    """Unit templates plus the lookup tables matching needs.

    Parameters
    ----------
    templates : float32 array, shape (n_units, n_samples, n_channels)
        Mean waveforms in noise-sigma units; the trough of unit ``k`` on its main channel sits at
        sample ``pre``.
    pre : int
        Samples before the trough.
    n_match : int
        Leading samples of each template that matching compares (``pre`` + samples after the
        trough needed to tell units apart); the rest, the slow tail, is only subtracted.
    noise : float64 array, shape (n_channels,)
        Noise sigma of each channel in the input's unit (uV), from calibration.
    positions : float64 array, shape (n_channels, 2)
        Contact positions in um.
    sfreq : float
        Sampling rate the templates were learned at.
    n_spikes : int64 array, shape (n_units,)
        Spikes each template was built from.
    support_sigma : float
        A channel belongs to a unit's support when the template's peak |value| there is at least
        this many noise sigmas; matching and subtraction use only the support.
    max_offset : int
        A unit is a candidate for a peak on channel ``c`` only if its trough on ``c`` is within this
        many samples of its main trough (so the matching window is known in advance).
    candidate_fraction : float
        ... and only if its trough on ``c`` reaches this fraction of the detection threshold.
    threshold : float
        Detection threshold (noise sigmas) the candidate test uses.
    residue : float32 array (n_samples, n_channels) or None
        Mean stimulation-artifact residue of the preprocessed signal around a pulse (noise-sigma
        units), starting ``residue_start`` samples from the pulse onset; subtracted at every pulse.
    """

    templates: npt.NDArray[np.float32]
    pre: int
    n_match: int
    noise: npt.NDArray[np.float64]
    positions: npt.NDArray[np.float64]
    sfreq: float
    n_spikes: npt.NDArray[np.int64]
    support_sigma: float = 1.0
    max_offset: int = 4
    candidate_fraction: float = 0.5
    threshold: float = 5.0
    meta: dict[str, Any] = field(default_factory=dict)
    residue: npt.NDArray[np.float32] | None = None
    residue_start: int = 0

    def __post_init__(self) -> None:
        self.templates = np.ascontiguousarray(self.templates, dtype=np.float32)
        self.noise = np.asarray(self.noise, dtype=np.float64)
        self.positions = np.asarray(self.positions, dtype=np.float64)
        self.n_spikes = np.asarray(self.n_spikes, dtype=np.int64)
        if self.templates.ndim != 3:
            raise SortingError(
                f"Templates must be (n_units, n_samples, n_channels), got {self.templates.shape}."
            )
        if not (0 <= self.pre < self.n_samples and 0 < self.n_match <= self.n_samples):
            raise SortingError(
                f"Template windows do not fit the {self.n_samples}-sample templates: pre "
                f"{self.pre}, n_match {self.n_match}."
            )
        if not 0 <= self.max_offset <= self.n_samples:
            raise SortingError(
                f"max_offset must be within the {self.n_samples}-sample templates, got "
                f"{self.max_offset}."
            )
        if not (
            0 < self.sfreq <= 1e7  # no amplifier samples faster than 10 MHz
            and all(
                0.0 <= float(v) <= 1e6
                for v in (self.support_sigma, self.candidate_fraction, self.threshold)
            )
        ):
            raise SortingError(
                f"Template bank settings out of range: sfreq {self.sfreq} (0-10 MHz), "
                f"support_sigma {self.support_sigma}, candidate_fraction "
                f"{self.candidate_fraction}, threshold {self.threshold} (0-1e6)."
            )
        if self.templates.shape[2] != self.noise.shape[0]:
            raise SortingError(
                f"Templates have {self.templates.shape[2]} channels but the noise has "
                f"{self.noise.shape[0]}."
            )
        self.compile()

    # -- shape ------------------------------------------------------------------------------------
    @property
    def n_units(self) -> int:
        return int(self.templates.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.templates.shape[1])

    @property
    def n_channels(self) -> int:
        return int(self.templates.shape[2])

    @property
    def post(self) -> int:
        """Samples after the trough that matching compares."""
        return self.n_match - 1 - self.pre

    @property
    def tail(self) -> int:
        """Samples after the trough that subtraction removes."""
        return self.n_samples - 1 - self.pre

    @property
    def main_channel(self) -> npt.NDArray[np.int32]:
        """Channel of each unit's deepest trough."""
        if self.n_units == 0:
            return np.zeros(0, np.int32)
        return np.argmin(self.templates.min(axis=1), axis=1).astype(np.int32)

    def templates_uv(self) -> npt.NDArray[np.float32]:
        """Templates in the input's unit (uV): noise sigma times the normalised template."""
        return (self.templates * self.noise[None, None, :]).astype(np.float32)

    # -- lookup tables ------------------------------------------------------------------------------
    def compile(self) -> None:
        """(Re)build supports, norms, per-channel troughs offsets and candidate lists."""
        k_units, n_t, n_ch = self.templates.shape
        peak_abs = np.abs(self.templates).max(axis=1) if k_units else np.zeros((0, n_ch))
        main = self.main_channel
        in_support = peak_abs >= self.support_sigma
        if k_units:
            in_support[np.arange(k_units), main] = True
        counts = in_support.sum(axis=1).astype(np.int32)
        self.support = np.full((k_units, max(1, int(counts.max(initial=1)))), -1, np.int32)
        for k in range(k_units):
            idx = np.flatnonzero(in_support[k])
            self.support[k, : idx.size] = idx
        self.n_support = counts
        self.norms = np.array(
            [
                float(
                    (self.templates[k][: self.n_match, in_support[k]].astype(np.float64) ** 2).sum()
                )
                for k in range(k_units)
            ],
            dtype=np.float64,
        )
        troughs = self.templates[:, : self.n_match].min(axis=1) if k_units else np.zeros((0, n_ch))
        self.offsets = (
            (np.argmin(self.templates[:, : self.n_match], axis=1) - self.pre).astype(np.int32)
            if k_units
            else np.zeros((0, n_ch), np.int32)
        )
        ok = (
            in_support
            & (np.abs(self.offsets) <= self.max_offset)
            & (troughs <= -self.candidate_fraction * self.threshold)
        )
        cand_counts = ok.sum(axis=0).astype(np.int32)
        self.candidates = np.full((n_ch, max(1, int(cand_counts.max(initial=1)))), -1, np.int32)
        for c in range(n_ch):
            idx = np.flatnonzero(ok[:, c])
            self.candidates[c, : idx.size] = idx
        self.n_candidates = cand_counts

    # -- persistence --------------------------------------------------------------------------------
    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write the bank to ``path`` (``.npz``: arrays plus a JSON header)."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz")
        header = {
            "format": BANK_FORMAT,
            "pre": self.pre,
            "n_match": self.n_match,
            "sfreq": self.sfreq,
            "support_sigma": self.support_sigma,
            "max_offset": self.max_offset,
            "candidate_fraction": self.candidate_fraction,
            "threshold": self.threshold,
            "residue_start": self.residue_start,
            "meta": self.meta,
            "extra": extra or {},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            path,
            templates=self.templates,
            noise=self.noise,
            positions=self.positions,
            n_spikes=self.n_spikes,
            residue=np.zeros((0, self.n_channels), np.float32)
            if self.residue is None
            else self.residue,
            header=np.array(json.dumps(header, default=_plain)),
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> tuple[TemplateBank, dict[str, Any]]:
        """Read a bank written by :meth:`save`; returns it and the ``extra`` dict saved with it.

        Raises
        ------
        TemplateFileError
            The path is missing or a directory, the file is not a template file (not an ``.npz``
            archive, or one without a template header), it was made by a newer version of the
            toolkit, or its arrays disagree on the channel count.
        """
        path = Path(path)
        if not path.exists():
            raise TemplateFileError(f"No such file: {path} (expected a template file).")
        if not path.is_file():
            raise TemplateFileError(_not_a_bank(path, "it is a directory"))
        arrays, header = _read(path)
        version = header.get("format")
        if not isinstance(version, int) or version < 1:
            raise TemplateFileError(_not_a_bank(path, "its header has no format version"))
        if version > BANK_FORMAT:
            raise TemplateFileError(
                f"{path} was made by a newer version of the toolkit (template format {version}; "
                f"this version reads format {BANK_FORMAT}): update bci to load it."
            )
        try:
            bank = cls(
                templates=arrays["templates"],
                pre=int(header["pre"]),
                n_match=int(header["n_match"]),
                noise=arrays["noise"],
                positions=arrays["positions"],
                sfreq=float(header["sfreq"]),
                n_spikes=arrays["n_spikes"],
                support_sigma=float(header["support_sigma"]),
                max_offset=int(header["max_offset"]),
                candidate_fraction=float(header["candidate_fraction"]),
                threshold=float(header["threshold"]),
                meta=dict(header.get("meta", {})),
                residue=arrays["residue"] if arrays["residue"].shape[0] else None,
                residue_start=int(header.get("residue_start", 0)),
            )
        except KeyError as exc:
            raise TemplateFileError(_not_a_bank(path, f"it has no {exc.args[0]!r}")) from None
        except (TypeError, ValueError, IndexError, OverflowError) as exc:
            raise TemplateFileError(f"{path} is not a usable template file: {exc}") from None
        n = bank.n_channels
        if bank.positions.shape != (n, 2) or bank.n_spikes.shape[0] != (bank.n_units):
            raise TemplateFileError(
                f"{path} has the wrong channel count: its templates have {n} channels, its "
                f"noise {bank.noise.shape[0]}, its contact positions shape "
                f"{bank.positions.shape}, its spike counts {bank.n_spikes.shape[0]} units for "
                f"{bank.n_units} templates."
            )
        extra = header.get("extra", {})
        return bank, dict(extra) if isinstance(extra, dict) else {}


def _not_a_bank(path: Path, reason: str) -> str:
    return f"{path} is not a template file (as saved by OnlineSorter.save): {reason}."


def _read(path: Path) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
    """The arrays and the JSON header of a template file (errors name the file, never numpy's
    internals: a non-archive would otherwise get numpy's advice to load it as a pickle)."""
    # numpy leaks the file it opened when the archive is broken: open (and close) it here
    with path.open("rb") as file:
        try:
            data = np.load(file, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, NotImplementedError):
            # NotImplementedError: zipfile on an unknown compression method or zip version
            raise TemplateFileError(_not_a_bank(path, "it is not an .npz archive")) from None
        if not isinstance(data, NpzFile):
            raise TemplateFileError(_not_a_bank(path, "it holds a single array, not an archive"))
        with data:
            if "header" not in data.files:
                raise TemplateFileError(_not_a_bank(path, "it has no template header"))
            try:
                arrays = {key: data[key] for key in data.files}
            except (
                OSError,
                ValueError,
                EOFError,
                zipfile.BadZipFile,
                zlib.error,
                NotImplementedError,
            ):
                raise TemplateFileError(_not_a_bank(path, "its arrays cannot be read")) from None
    try:
        header = json.loads(str(arrays.pop("header")))
    except ValueError:  # json.JSONDecodeError
        raise TemplateFileError(_not_a_bank(path, "its header is not JSON")) from None
    if not isinstance(header, dict):
        raise TemplateFileError(_not_a_bank(path, "its header is not a JSON object"))
    return arrays, header


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Cannot save {type(value).__name__} in a template bank header.")
