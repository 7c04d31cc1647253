"""Stimulation artifacts: the transient a stimulation pulse leaves on recording contacts.

Model: a charge-balanced biphasic pulse seen through the tissue (cathodic phase first, each phase
half of ``width_ms``) followed by an exponential recovery of the amplifier and electrode
(``recovery_ms`` time constant, starting at ``recovery_fraction`` of the pulse amplitude, same sign
as the second phase). Artifacts of DBS and intracortical microstimulation are millivolt-scale,
far above spikes, and decay over milliseconds (e.g. Zhou, Johnson & Muller 2018, Nat Biomed Eng
2:1; O'Shea & Shenoy 2018, J Neural Eng 15:026020, which also motivates blanking online). The
amplitude is uniform across channels, or falls off with distance from a stimulation site as
``1 / (1 + (d / falloff_um)^2)`` (normalised to 1 at the nearest contact). Saturation at the
amplifier's input range is applied by the renderer to the summed signal.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from bci.checks import ensure_float


def make_artifact_kernel(
    sfreq: float,
    n_channels: int,
    *,
    amplitude_uv: float = 2000.0,
    width_ms: float = 0.2,
    recovery_ms: float = 1.0,
    recovery_fraction: float = 0.3,
    positions: npt.NDArray[np.float64] | None = None,
    site_um: npt.ArrayLike | None = None,
    falloff_um: float = 200.0,
) -> npt.NDArray[np.float64]:
    """Return the artifact waveform on every channel, shape (n_kernel_samples, n_channels), in uV.

    Sample 0 of the kernel is the pulse onset (the artifact sample). The kernel lasts the pulse
    plus 6 recovery time constants. ``site_um`` (x, y[, z]) needs ``positions``.
    """
    amplitude_uv = ensure_float(amplitude_uv, "artifact_amplitude_uv", minimum=0.0)
    width_ms = ensure_float(width_ms, "artifact_width_ms", minimum=0.0, strict_minimum=True)
    recovery_ms = ensure_float(
        recovery_ms, "artifact_recovery_ms", minimum=0.0, strict_minimum=True
    )
    n_pulse = max(int(round(width_ms * 1e-3 * sfreq)), 2)
    n_half = n_pulse // 2
    n_tail = int(np.ceil(6 * recovery_ms * 1e-3 * sfreq))
    wave = np.zeros(n_pulse + n_tail)
    wave[:n_half] = -1.0
    wave[n_half:n_pulse] = 1.0
    t_tail = np.arange(n_tail) / sfreq * 1e3
    wave[n_pulse:] = recovery_fraction * np.exp(-t_tail / recovery_ms)
    if site_um is None or positions is None:
        gain = np.ones(n_channels)
    else:
        site = np.asarray(site_um, dtype=np.float64).ravel()
        contacts = np.column_stack([positions, np.zeros(len(positions))])
        site3 = np.zeros(3)
        site3[: min(site.size, 3)] = site[:3]
        d = np.linalg.norm(contacts - site3[None, :], axis=1)
        gain = 1.0 / (1.0 + (d / falloff_um) ** 2)
        gain /= gain.max()
    return amplitude_uv * wave[:, None] * gain[None, :]
