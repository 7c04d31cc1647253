"""Full training of the RL-SNN controller (TD3, spiking actor) and its wall time on this machine.

Runs :func:`stimulation.controllers.training.train` with the configuration of the shipped model
(``--config`` overrides it), writes the actor, its checkpoints and its training curve (CSV, PNG)
under ``--out-dir``, and with ``--ship`` copies the actor to
``stimulation/controllers/models/rl_snn.npz`` (the demo's controller; its metadata keeps this
command, the seed and the wall time). Prints the curve and the wall time; ``--json OUT`` writes
them. The wall time depends on how many cores the process gets: it is measured, not asserted.

    nice -n 10 .venv/bin/python benchmarks/train_controller.py --out-dir runs/rl_snn --ship
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

import yaml

from stimulation.controllers.rl_snn import DEFAULT_MODEL
from stimulation.controllers.training import TrainConfig, train

#: The configuration of the shipped model (its settings file beside it).
SHIPPED = yaml.safe_load(DEFAULT_MODEL.with_suffix(".yaml").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=None, help="YAML overriding the settings")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--ship", action="store_true", help="copy the actor to the package")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    values = dict(SHIPPED)
    if args.config is not None:
        values.update(yaml.safe_load(args.config.read_text()) or {})
    if args.seed is not None:
        values["seed"] = args.seed
    if args.steps is not None:
        values["total_steps"] = args.steps
    config = TrainConfig.from_dict(values)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    t0 = time.perf_counter()
    weights = train(config, args.out_dir, command=command, progress=True)
    wall = time.perf_counter() - t0
    curve = (args.out_dir / "curve.csv").read_text()
    print(curve)
    print(f"Trained {weights.meta['steps']} transitions in {wall:.0f} s wall")
    if args.ship:
        DEFAULT_MODEL.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(args.out_dir / "actor.npz", DEFAULT_MODEL)
        print(f"Shipped as {DEFAULT_MODEL}")
    if args.json is not None:
        args.json.write_text(
            json.dumps({"wall_s": wall, "config": values, "curve_csv": curve}, indent=1)
        )


if __name__ == "__main__":
    main()
