"""A foreign process on the lab network: publishes stimulation commands on a stimulator's stream.

``python _intruder.py STREAM SOURCE_ID TOKEN N AMPLITUDE_MA``: opens a command stream of that
name, prints ``ready``, waits for a line on stdin, sends N commands 20 ms apart (seq 0..N-1,
stamped now), prints ``sent N`` and keeps the outlet open until stdin closes.
"""

from __future__ import annotations

import sys
import time

from stimulation.plant.commands import CommandOutlet


def main() -> None:
    stream, source_id, token, n, amplitude = sys.argv[1:6]
    outlet = CommandOutlet(stream, source_id, token)
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(int(n)):
        outlet.send(float(amplitude))
        time.sleep(0.02)
    print(f"sent {n}", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
