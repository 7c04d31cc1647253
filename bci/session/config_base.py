"""Building blocks of the session config models: the error type, the base model, parameter checks.

See :mod:`bci.session.config`.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from bci.errors import ConfigError

#: Packages whose import registers more stages (controllers live outside ``bci``).
EXTRA_STAGE_PACKAGES: tuple[str, ...] = ("stimulation.controllers",)


class SessionConfigError(ConfigError):
    """A session config is invalid: the message names the key, the value and what is allowed."""


class _Model(BaseModel):
    # NaN and infinity are never a valid duration, rate or limit (an infinite duration_s would
    # overflow the sample count, an infinite flush interval would never flush the recording)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def _load_extra_stage_packages() -> None:
    for package in EXTRA_STAGE_PACKAGES:
        try:
            importlib.import_module(package)
        except ModuleNotFoundError as err:
            if err.name is None or not package.startswith(err.name):
                raise


def stage_class(name: str) -> type:
    """The stage class registered as ``name`` (controllers' package loaded first)."""
    from bci.stream import get_stage_class

    _load_extra_stage_packages()
    return get_stage_class(name)


def _check_params(cls: type, params: Mapping[str, Any], what: str) -> None:
    """Raise ValueError naming a parameter the class's constructor does not take."""
    signature = inspect.signature(getattr(cls, "__init__"))  # noqa: B009 (not __new__'s)
    accepted = [p for p in signature.parameters if p != "self"]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return
    for key in params:
        if key not in accepted:
            options = ", ".join(repr(a) for a in accepted) or "(none)"
            raise ValueError(
                f"unknown parameter {key!r} of {what}. Allowed parameters are {options}."
            )


def _plain_values(value: Any, key: str) -> None:
    """Raise ValueError for YAML values config.yaml cannot hold as text (``!!binary`` bytes)."""
    if isinstance(value, (bytes, bytearray)):
        raise ValueError(
            f"invalid value for '{key}': binary data (a !!binary YAML value); give numbers or text"
        )
    if isinstance(value, Mapping):
        for k, v in value.items():
            _plain_values(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, (list, tuple, set)):
        for i, v in enumerate(value):
            _plain_values(v, f"{key}.{i}")
