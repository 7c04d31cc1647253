"""The plant as the session's source process: ``python -m bci.runner.plant_child SETTINGS_JSON``.

Builds a :class:`stimulation.plant.bridge.PlantBridge` (network, virtual probe, timing, raw
format, the plant-side safety limits) from a JSON object of the parts' arguments (what
:func:`bci.runner.sources.plant_settings` writes, plus ``duration_s``), prints :data:`READY_LINE`
once its outlets exist, runs it (real time, or lockstep with the session's limiter) until the
duration has gone out or SIGINT/SIGTERM, and prints its statistics as one JSON line after
:data:`STATS_LINE`. ``bci plant`` builds the same bridge from command-line flags.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from dataclasses import asdict
from types import FrameType
from typing import Any

READY_LINE = "bci-plant: ready"
STATS_LINE = "bci-plant: stats "
#: Seconds the outlets stay open after the duration has gone out (or until SIGINT/SIGTERM).
LINGER_S = 10.0


def plant_timing(settings: dict[str, Any]) -> Any:
    """The plant's :class:`~stimulation.plant.bridge_config.BridgeTiming` from ``settings``
    (the session's ``source.timing`` with the runner's pacing)."""
    from stimulation.plant.bridge_config import BridgeTiming

    return BridgeTiming(lockstep=settings["lockstep"], **settings.get("timing", {}))


def build_bridge(settings: dict[str, Any]) -> Any:
    """The PlantBridge described by ``settings`` (see :func:`bci.runner.sources.plant_settings`)."""
    from stimulation.plant import BasalGangliaNetwork
    from stimulation.plant.bridge import PlantBridge
    from stimulation.plant.bridge_config import RawFormat
    from stimulation.plant.fluctuation import Fluctuation
    from stimulation.plant.probe import VirtualProbe
    from stimulation.safety import REFERENCE_AMPLITUDE_MA, SafetyLimits, model_amplitude_ua_cm2

    network_args = dict(settings.get("network", {}))
    cells = int(network_args.pop("cells_per_nucleus", 10))
    plant = settings.get("plant", "stationary")
    network = BasalGangliaNetwork(
        state=settings["state"],
        cells_per_nucleus=cells,
        seed=settings["seed"],
        plant=plant,
        fluctuation=Fluctuation(**settings["fluctuation"]) if settings.get("fluctuation") else None,
        **network_args,
    )
    probe_args = {
        "reference_amplitude": model_amplitude_ua_cm2(REFERENCE_AMPLITUDE_MA),
        **settings.get("probe", {}),
    }
    probe = VirtualProbe(cells, seed=settings["seed"], **probe_args)
    return PlantBridge(
        network,
        probe,
        name=settings["name"],
        source_id=settings["source_id"],
        limits=SafetyLimits.from_dict(settings["limits"]),
        command_stream=settings["command_stream"],
        timing=plant_timing(settings),
        raw_format=RawFormat(**settings.get("raw_format", {})),
        biphasic=bool(settings.get("biphasic", False)),
    )


def main(argv: list[str] | None = None) -> int:
    """Run the bridge described by ``argv[0]`` (JSON); return the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bci.runner.plant_child SETTINGS_JSON", file=sys.stderr)
        return 2
    from bci.errors import BCIError
    from bci.signals import STOP_SIGNALS, accept_stop_signals

    accept_stop_signals()  # even under a parent that blocks SIGINT (Ray's workers do)
    settings = json.loads(args[0])
    duration_s = settings.pop("duration_s", None)
    try:
        bridge = build_bridge(settings)
    except (BCIError, TypeError) as err:
        print(f"bci-plant: error {err}", file=sys.stderr, flush=True)
        return 1
    stopped = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        # Event.set takes a lock the interrupted main thread may hold: set it from a thread
        threading.Thread(target=_stop_now, name="stop", daemon=True).start()

    def _stop_now() -> None:
        stopped.set()
        bridge.stop()

    for sig in STOP_SIGNALS:
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
            "n_dropped": bridge.n_dropped,
        }
        print(STATS_LINE + json.dumps(out), flush=True)
        # outlets drop what inlets have not fetched when they close: linger until told to stop
        stopped.wait(LINGER_S)
    return 0


if __name__ == "__main__":
    sys.exit(main())
