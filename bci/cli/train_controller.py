"""``bci train-controller``: train the RL spiking controller (TD3) and export it for numpy."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from bci.cli._params import yaml_file_option


@click.command("train-controller")
@yaml_file_option(
    "--config",
    "config_file",
    "YAML file of training settings (stimulation.controllers.training.TrainConfig fields).",
)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=True, dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the trained actor (.npz); curves and checkpoints go next to it.",
)
@click.option("--seed", type=int, default=None, help="Overrides the config's seed.")
@click.option("--steps", type=int, default=None, help="Overrides the config's total_steps.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar.")
def train_controller(
    config_file: Path | None, out: Path, seed: int | None, steps: int | None, progress: bool
) -> None:
    """Train the RL-SNN controller on the simulated plant with TD3 (needs torch and SB3)."""
    import yaml

    from bci.errors import ConfigError

    try:
        from stimulation.controllers.training import TrainConfig, train
    except ImportError as err:
        raise click.ClickException(
            f"Training needs the train extra (torch, stable-baselines3): {err}. "
            "Install with: pip install -e '.[train]'"
        ) from None
    values = {}
    if config_file is not None:
        try:
            loaded = yaml.safe_load(config_file.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise click.BadParameter(str(err), param_hint="--config") from None
        if not isinstance(loaded, dict):
            raise click.BadParameter("must hold a mapping of settings", param_hint="--config")
        values.update(loaded)
    if seed is not None:
        values["seed"] = seed
    if steps is not None:
        if steps < 1:
            raise click.BadParameter(f"must be >= 1, got {steps}", param_hint="--steps")
        values["total_steps"] = steps
    if out.suffix != ".npz":
        raise click.BadParameter(f"must end in .npz, got {out}", param_hint="--out")
    try:
        config = TrainConfig.from_dict(values)
    except (ConfigError, TypeError) as err:
        raise click.UsageError(f"Invalid training config: {err}") from None
    out_dir = out.parent / f"{out.stem}_training"
    command = "bci " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    weights = train(config, out_dir, command=command, progress=progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    weights.save(out)
    click.echo(
        f"Trained {weights.meta['steps']} transitions in {weights.meta['wall_s']} s; actor "
        f"written to {out}; curves and checkpoints in {out_dir}"
    )
