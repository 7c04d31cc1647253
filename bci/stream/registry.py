"""Name -> class registry, so session configs can name stages as strings.

A stage registers itself by passing ``name=`` in its class statement::

    class BandPass(Stage, name="bandpass"): ...

Lookups that miss import the toolkit's stage packages once (they register on import), so a config
can name any built-in stage without importing it first. A dotted ``"package.module:Class"`` path
names a stage outside the toolkit.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, cast

from bci.errors import ConfigError

if TYPE_CHECKING:
    from bci.stream.stage import Stage

_REGISTRY: dict[str, type[Stage]] = {}

#: Packages whose import registers stages; imported lazily on the first lookup miss.
STAGE_PACKAGES: tuple[str, ...] = (
    "bci.preprocessing",
    "bci.sorting",
    "bci.features",
    "decoders",
    "stimulation.controllers",
)
_loaded_packages = False


def register_stage(name: str, cls: type[Stage]) -> None:
    """Register ``cls`` under ``name``; a second class under the same name is an error."""
    existing = _REGISTRY.get(name)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
        raise ConfigError(
            f"Stage name {name!r} is already registered to {existing.__module__}."
            f"{existing.__qualname__}; pick another name for {cls.__module__}.{cls.__qualname__}."
        )
    _REGISTRY[name] = cls


def _load_builtin_stages() -> None:
    global _loaded_packages
    if _loaded_packages:
        return
    _loaded_packages = True
    for package in STAGE_PACKAGES:
        try:
            importlib.import_module(package)
        except ModuleNotFoundError as err:
            # Only a missing package is skipped; an error inside one is the user's to see.
            if err.name is None or not package.startswith(err.name):
                raise


def get_stage_class(name: str) -> type[Stage]:
    """Return the stage class registered as ``name`` (or at ``"module:Class"``)."""
    if ":" in name:
        module_name, _, class_name = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as err:
            raise ConfigError(f"Cannot import stage {name!r}: {err}") from err
        from bci.stream.stage import Source, Stage

        # checked before anything calls it: a config must not run arbitrary callables
        if not (isinstance(cls, type) and issubclass(cls, (Stage, Source))):
            raise ConfigError(
                f"Cannot use {name!r} as a stage: it is not a bci.stream.Stage or Source."
            )
        # a Source is described and rebuilt through the same to_dict/from_dict protocol
        return cast("type[Stage]", cls)
    if name not in _REGISTRY:
        _load_builtin_stages()
    if name not in _REGISTRY:
        options = ", ".join(repr(n) for n in sorted(_REGISTRY)) or "(none registered)"
        raise ConfigError(
            f"Invalid value for the 'stage' parameter. Allowed values are {options}, "
            f"but got {name!r} instead."
        )
    return _REGISTRY[name]


def available_stages() -> list[str]:
    """Names of every registered stage (after loading the built-in stage packages)."""
    _load_builtin_stages()
    return sorted(_REGISTRY)
