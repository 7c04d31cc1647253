"""The plant as the session's source process: ``python -m bci.runner.plant_child SETTINGS_JSON``.

Builds a :class:`stimulation.plant.bridge.PlantBridge` from a JSON object of its arguments (plus
``duration_s``), prints :data:`READY_LINE` once its outlets exist, runs it (real time, or lockstep
with the session's controller) until the duration has gone out or SIGINT/SIGTERM, and prints its
statistics as one JSON line after :data:`STATS_LINE`. The runner starts it with
:class:`bci.runner.processes.ChildProcess`; ``bci plant`` is the same bridge for people.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from dataclasses import asdict
from types import FrameType

READY_LINE = "bci-plant: ready"
STATS_LINE = "bci-plant: stats "
#: Seconds the outlets stay open after the duration has gone out (or until SIGINT/SIGTERM).
LINGER_S = 10.0


def main(argv: list[str] | None = None) -> int:
    """Run the bridge described by ``argv[0]`` (JSON); return the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bci.runner.plant_child SETTINGS_JSON", file=sys.stderr)
        return 2
    from bci.errors import BCIError
    from stimulation.plant.bridge import PlantBridge

    settings = json.loads(args[0])
    duration_s = settings.pop("duration_s", None)
    try:
        bridge = PlantBridge.from_settings(**settings)
    except (BCIError, TypeError) as err:
        print(f"bci-plant: error {err}", file=sys.stderr, flush=True)
        return 1

    stopped = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopped.set()
        bridge.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)
    with bridge:
        # the probe holds back its last samples of each period: the loop needs to know how many
        print(f"{READY_LINE} latency_samples={int(bridge.probe.latency_samples)}", flush=True)
        try:
            stats = bridge.run(duration_s)
        except BCIError as err:
            print(f"bci-plant: error {err}", file=sys.stderr, flush=True)
            return 1
        out = {
            **asdict(stats),
            "t_model_s": bridge.t_model_s,
            "n_invalid": bridge.n_invalid,
            "n_unauthorised": bridge.n_unauthorised,
        }
        print(STATS_LINE + json.dumps(out), flush=True)
        # outlets drop what inlets have not fetched when they close: linger until told to stop
        stopped.wait(LINGER_S)
    return 0


if __name__ == "__main__":
    sys.exit(main())
