"""Symptom decoder for closed-loop DBS: the windowed GPi beta of ``BasalGanglia-v0``, estimated
from the spikes the loop has (units sorted online from the plant's virtual probe).

Interface (for the controller and the runner)
---------------------------------------------
The decoder is a :class:`~decoders.base.Decoder` whose input is binned spike counts of whatever
units the loop has, in any order and any number (>= 1), and whose one output is the estimated
relative GPi beta power over the last ``window_s`` (the same 0.25-s window, 13-30 Hz over
4-100 Hz, as :meth:`stimulation.plant.monitor.BiomarkerMonitor.beta_power`, the env's
``symptom``)::

    from decoders.symptom import SymptomDecoder, DEFAULT_MODEL
    dec = SymptomDecoder.load(DEFAULT_MODEL)     # shipped, numpy only, no torch
    dec.bin_s, dec.window_s                      # 0.005 s bins, 0.25 s window
    dec.reset()                                  # at each episode / session start
    y = dec.step(counts)                         # counts: (n_units,) spikes in one 5-ms bin
    y = dec.step_bins(counts)                    # counts: (n_bins, n_units); estimate after the last
    y = dec.estimate_from_spike_times(spike_times_s, t_stop_s)   # stateless, from spike times
    f = dec.features_from_spike_times(spike_times_s, t_stop_s)   # the feature vector itself

``y`` is a float32 array of shape ``(1,)`` (``step``, ``step_bins``) or a float. Before a full
window has been seen the estimate uses the bins so far (zeros before the first bin).

Two feeds, the same features:

- **runner (online)**: ``SpikeBinner(bin_s=0.005)`` on the sorted spikes of the probe
  (``OnlineSorter``; unsorted spikes left out), then :class:`decoders.DecoderStage` with this
  model; the stage's StateChunk column is ``"gpi_beta"``.
- **env training (no sorter)**: the plant's ground-truth spikes of the probed cells. With
  ``BasalGangliaEnv(observation="spikes", recorded_nuclei=(probe_nucleus,), bin_s=0.005)`` the
  observation is ``(4, n_cells)`` counts per 20-ms step: call ``dec.step_bins(obs[:, cells])``
  with ``cells = VirtualProbe(cells_per_nucleus, nucleus, n_units, seed).cells`` (or all cells of
  the nucleus: the features do not depend on which or how many units). Or, from a
  :class:`~stimulation.plant.PlantRecord`, ``dec.estimate_from_spike_times(
  [rec.spike_times[nucleus][c] for c in cells], rec.t_stop_s)`` (spike times of the window are
  needed, so keep the last ``window_s`` of spikes).

Why inputs that do not depend on unit order: sorted unit identities differ from the plant's cell
indices and between sessions (and the sorter may split or merge cells), so the features are
computed from the *pooled* count of all units (the sum is unchanged by relabelling, splitting or
merging) plus per-unit statistics reduced symmetrically (means over units). No per-session
calibration is needed.
"""

from __future__ import annotations
