"""A paced LSL outlet in its own process, for the source tests (killed and restarted by them).

Channel 0 of every sample holds its sample index on the outlet's clock, ``round((t - t_start) *
sfreq)``, and every sample is stamped ``t_start + index / sfreq``: so a restarted outlet continues the
same time base, and a test can tell exactly which samples never arrived.

Usage: python lsl_outlet_process.py NAME SOURCE_ID N_CHANNELS SFREQ CHUNK_SAMPLES T_START DURATION_S
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pylsl

from bci.acquisition.metadata import make_stream_info
from bci.acquisition.outlet import SignalOutlet


def main(argv: list[str]) -> None:
    name, source_id = argv[0], argv[1]
    n_channels, sfreq, chunk = int(argv[2]), float(argv[3]), int(argv[4])
    t_start, duration_s = float(argv[5]), float(argv[6])
    outlet = SignalOutlet(make_stream_info(name, "Neural", n_channels, sfreq, "float32", source_id))
    print("ready", flush=True)
    next_index = max(0, round((pylsl.local_clock() - t_start) * sfreq))
    t_stop = pylsl.local_clock() + duration_s
    while pylsl.local_clock() < t_stop:
        last = next_index + chunk - 1
        wait = t_start + last / sfreq - pylsl.local_clock()
        if wait > 0:
            time.sleep(wait)
        index = np.arange(next_index, last + 1, dtype=np.float32)
        data = np.tile(index[:, None], (1, n_channels))
        data[:, 1:] += np.arange(1, n_channels, dtype=np.float32) * 0.25
        outlet.push(data, timestamp=t_start + last / sfreq)
        next_index = last + 1


if __name__ == "__main__":
    main(sys.argv[1:])
