"""An amplifier for the fault tests: ``python _fault_source.py NAME SOURCE_ID [options]``.

Publishes ``--channels`` float32 channels at ``--sfreq`` in ``--chunk-ms`` chunks, paced to the
wall clock. Channel 0 carries the sample's running index (so a recording shows exactly which
samples it holds), the others noise. Prints ``t0 <lsl time>`` once and ``pushed <n>`` (samples so
far, counted from ``--start-index``) every 50 ms. Faults on signal: SIGUSR1 pushes NaN and inf in
channels 1.. for ``--nan-ms``; SIGUSR2 adds ``--jump-s`` to every stamp from then on (a clock
jump).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

import numpy as np
import pylsl

from bci.acquisition.metadata import make_stream_info


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("name")
    p.add_argument("source_id")
    p.add_argument("--channels", type=int, default=4)
    p.add_argument("--sfreq", type=float, default=30000.0)
    p.add_argument("--chunk-ms", type=float, default=1.0)
    p.add_argument("--start-index", type=int, default=0)
    p.add_argument("--nan-ms", type=float, default=100.0)
    p.add_argument("--jump-s", type=float, default=5.0)
    a = p.parse_args()
    faults = {"nan_left": 0, "jump": 0.0}

    def on_nan(signum: int, frame: object) -> None:
        faults["nan_left"] = int(a.nan_ms * 1e-3 * a.sfreq)

    def on_jump(signum: int, frame: object) -> None:
        faults["jump"] += a.jump_s

    signal.signal(signal.SIGUSR1, on_nan)
    signal.signal(signal.SIGUSR2, on_jump)
    info = make_stream_info(a.name, "Neural", a.channels, a.sfreq, "float32", a.source_id)
    outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=60)
    rng = np.random.default_rng(a.start_index)
    n_chunk = max(1, int(round(a.chunk_ms * 1e-3 * a.sfreq)))
    t0 = pylsl.local_clock()
    print(f"t0 {t0!r}", flush=True)
    k = 0  # samples pushed by this process
    next_print = time.monotonic()
    while True:
        due = t0 + (k + n_chunk) / a.sfreq
        wait = due - pylsl.local_clock()
        if wait > 0:
            time.sleep(wait)
        idx = a.start_index + k + np.arange(n_chunk)
        data = rng.normal(0.0, 10.0, (n_chunk, a.channels)).astype(np.float32)
        data[:, 0] = idx
        t_rel = (k + np.arange(n_chunk)) / a.sfreq
        if faults["nan_left"] > 0:
            bad = min(n_chunk, faults["nan_left"])
            data[:bad, 1:] = np.nan
            data[:bad, 1] = np.inf
            faults["nan_left"] -= bad
        stamps = t0 + t_rel + faults["jump"]
        outlet.push_chunk(data, stamps.tolist())
        k += n_chunk
        if time.monotonic() >= next_print:
            next_print += 0.05
            print(f"pushed {a.start_index + k}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
