"""Hostile session YAML: any bytes, any mutation of a valid config, YAML tags that would build
Python objects, import paths that name something other than a stage. Each gives a
:class:`~bci.session.config.SessionConfigError` (or another ``bci.ConfigError``) that names the
problem, or a config whose every number is finite; nothing is executed.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from fuzz_support import clear_error_or_value, long_run, short_run
from hypothesis import given
from hypothesis import strategies as st

from bci.errors import BCIError, ConfigError, StageCompatibilityError
from bci.runner import build_parts
from bci.session.config import (
    SessionConfig,
    SessionConfigError,
    apply_overrides,
    load_session,
    parse_session,
)
from bci.stream import get_stage_class

BASE: dict[str, Any] = {
    "name": "fuzz",
    "description": "a valid session the fuzzer mutates",
    "seed": 1,
    "duration_s": 10.0,
    "pacing": "lockstep",
    "source": {"kind": "plant", "state": "pd"},
    "pipeline": [
        {"stage": "bandpass", "params": {"low_hz": 300.0, "high_hz": 6000.0}},
        {"stage": "common_reference"},
        {"stage": "online_sorter", "params": {"min_spikes": 10}},
        {"stage": "spike_binner", "params": {"bin_s": 0.02}},
    ],
    "decoder": {"stage": "decoder", "model": "model.npz"},
    "controller": {"stage": "continuous", "params": {"amplitude_ma": 2.0}},
    "calibration": {"duration_s": 2.0},
    "recording": {"flush_interval_s": 0.25},
    "timing": {"deadline_ms": 5.0},
    "compare": [{"label": "off", "controller": {"stage": "off"}}],
}

# Strings an attacker or a typo would try: import paths, path tricks, huge text.
NASTY_TEXT = st.sampled_from(
    [
        "",
        "off",
        "plant",
        "subprocess:Popen",
        "os:system",
        "builtins:eval",
        "bci.stream:Stage",
        "../../../etc/passwd",
        "x" * 5000,
        "\x00",
        "nan",
        ".inf",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    NASTY_TEXT,
    st.binary(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=10) | NASTY_TEXT, inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


PATHS = _paths(BASE)[1:]
MUTATION = st.tuples(
    st.sampled_from(PATHS),
    st.sampled_from(["replace", "delete", "add_key"]),
    VALUES,
    st.text(min_size=1, max_size=12),
)


def _mutated(mutations: list[tuple[tuple[Any, ...], str, Any, str]]) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    for path, op, value, key in mutations:
        parent: Any = doc
        try:
            for part in path[:-1]:
                parent = parent[part]
            last = path[-1]
            if op == "replace":
                parent[last] = value
            elif op == "delete":
                del parent[last]
            elif isinstance(parent[last], dict):
                parent[last][key] = value
            else:
                parent[last] = {key: value}
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    return doc


def _numbers(node: Any) -> list[float]:
    if isinstance(node, bool):
        return []
    if isinstance(node, (int, float)):
        return [float(node)] if not isinstance(node, int) or abs(node) < 2**1000 else []
    if isinstance(node, dict):
        return [x for v in node.values() for x in _numbers(v)]
    if isinstance(node, list):
        return [x for v in node for x in _numbers(v)]
    return []


def _check_accepted(config: SessionConfig) -> None:
    """What a config that validates promises the runner."""
    for key in ("duration_s",):
        assert math.isfinite(getattr(config, key)), key
    for section in ("calibration", "recording", "timing"):
        dumped = getattr(config, section).model_dump()
        bad = [k for k, v in dumped.items() if isinstance(v, float) and not math.isfinite(v)]
        assert not bad, f"{section}.{bad} accepted as non-finite"
    yaml.safe_dump(config.resolved())  # config.yaml can be written


def _mutated_config_gives_config_or_clear_error(mutations: list[Any]) -> None:
    doc = _mutated(mutations)
    config, err = clear_error_or_value(lambda: parse_session(doc), (SessionConfigError,))
    if config is not None:
        _check_accepted(config)


def test_the_base_config_is_valid() -> None:
    _check_accepted(parse_session(copy.deepcopy(BASE)))


@short_run(150)
@given(st.lists(MUTATION, min_size=1, max_size=4))
def test_mutated_configs_give_a_config_or_a_clear_error(mutations: list[Any]) -> None:
    _mutated_config_gives_config_or_clear_error(mutations)


@pytest.mark.slow
@long_run(3000)
@given(st.lists(MUTATION, min_size=1, max_size=6))
def test_mutated_configs_long(mutations: list[Any]) -> None:
    _mutated_config_gives_config_or_clear_error(mutations)


def _file_gives_config_or_clear_error(tmp: Path, content: bytes) -> None:
    path = tmp / "session.yaml"
    path.write_bytes(content)
    config, _ = clear_error_or_value(lambda: load_session(path), (SessionConfigError,))
    if config is not None:
        _check_accepted(config)


YAMLISH = st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#%@`, \n\t.0159eE")), max_size=200)


@short_run(150)
@given(st.binary(max_size=300) | YAMLISH.map(str.encode))
def test_any_file_content_gives_a_config_or_a_clear_error(
    tmp_path_factory: pytest.TempPathFactory, content: bytes
) -> None:
    _file_gives_config_or_clear_error(tmp_path_factory.mktemp("yaml"), content)


@short_run(60)
@given(st.lists(MUTATION, min_size=1, max_size=3))
def test_mutated_yaml_files_give_a_config_or_a_clear_error(
    tmp_path_factory: pytest.TempPathFactory, mutations: list[Any]
) -> None:
    doc = _mutated(mutations)
    try:
        text = yaml.safe_dump(doc).encode()
    except yaml.YAMLError:
        return
    _file_gives_config_or_clear_error(tmp_path_factory.mktemp("yaml"), text)


@pytest.mark.slow
@long_run(3000)
@given(st.binary(max_size=2000) | YAMLISH.map(str.encode))
def test_any_file_content_long(tmp_path_factory: pytest.TempPathFactory, content: bytes) -> None:
    _file_gives_config_or_clear_error(tmp_path_factory.mktemp("yaml"), content)


@short_run(100)
@given(st.lists(st.text(max_size=40) | NASTY_TEXT, min_size=1, max_size=3))
def test_set_overrides_give_a_config_or_a_clear_error(overrides: list[str]) -> None:
    data, err = clear_error_or_value(
        lambda: apply_overrides(copy.deepcopy(BASE), overrides), (SessionConfigError,)
    )
    if data is not None:
        clear_error_or_value(lambda: parse_session(data), (SessionConfigError,))


# ------------------------------------------------------------------ no code execution
@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system ['touch {marker}']",
        "!!python/object/apply:subprocess.call [['touch', '{marker}']]",
        "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
        "!!python/name:os.system",
        "!!python/module:os",
        "!!python/object:bci.session.config.SessionConfig {{}}",
        "!custom_tag value",
    ],
)
def test_yaml_tags_that_build_python_objects_are_refused(tmp_path: Path, tag: str) -> None:
    marker = tmp_path / "executed"
    path = tmp_path / "session.yaml"
    path.write_text(
        f"name: x\nduration_s: 5\nsource: {{kind: plant}}\ndescription: {tag.format(marker=marker)}\n"
    )
    with pytest.raises(SessionConfigError, match="not valid YAML"):
        load_session(path)
    assert not marker.exists()


def test_a_stage_import_path_to_something_else_is_refused_before_it_runs(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    doc = copy.deepcopy(BASE)
    doc["pipeline"][0] = {"stage": "subprocess:Popen", "params": {"args": ["touch", str(marker)]}}
    with pytest.raises(SessionConfigError, match=r"pipeline\.0\.stage.*not a bci\.stream\.Stage"):
        parse_session(doc)
    assert not marker.exists()
    with pytest.raises(ConfigError, match="not a bci.stream.Stage"):
        get_stage_class("builtins:eval")


def test_a_limiter_import_path_to_something_else_is_refused_before_it_runs(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "executed"
    doc = copy.deepcopy(BASE)
    doc.pop("decoder"), doc.pop("controller"), doc.pop("compare")
    doc["safety"] = {"limiter": "subprocess:Popen", "limits": {"args": ["touch", str(marker)]}}
    config = parse_session(doc)
    with pytest.raises(SessionConfigError, match="safety.limiter"):
        build_parts(config)
    assert not marker.exists()


def test_deeply_nested_yaml_gives_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("name: x\nduration_s: 5\nsource: {kind: plant}\ndescription: " + "[" * 5000)
    with pytest.raises(SessionConfigError, match="nested"):
        load_session(path)
    with pytest.raises(SessionConfigError, match="nested"):
        apply_overrides(copy.deepcopy(BASE), ["description=" + "[" * 5000 + "]" * 5000])


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("duration_s", "duration_s: .inf"),
        ("recording.flush_interval_s", "recording: {flush_interval_s: .inf}"),
        ("timing.deadline_ms", "timing: {deadline_ms: .nan}"),
        ("timing.stream_timeout_s", "timing: {stream_timeout_s: .inf}"),
    ],
)
def test_infinite_or_nan_numbers_are_refused_by_name(tmp_path: Path, key: str, text: str) -> None:
    path = tmp_path / "inf.yaml"
    lines = ["name: x", "source: {kind: plant}", text]
    if key != "duration_s":
        lines.append("duration_s: 5")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SessionConfigError, match=key.replace(".", r"\.")):
        load_session(path)


# ------------------------------------------------------------------ building the parts
STAGE_NAMES = [
    "artifact_blanker",
    "bandpass",
    "common_reference",
    "spike_binner",
    "threshold_crossings",
    "online_sorter",
    "off",
    "continuous",
    "threshold",
    "dual_threshold",
    "pi",
]


def _stage_params() -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    import inspect

    def params_of(name: str) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
        cls = get_stage_class(name)
        keys = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self",)]
        keys = [k for k in keys if k not in ("kwargs", "knobs", "config")]
        if name == "online_sorter":
            import dataclasses

            from bci.sorting.config import SorterConfig

            keys = [f.name for f in dataclasses.fields(SorterConfig)]
        return st.dictionaries(st.sampled_from(keys), VALUES, max_size=3).map(
            lambda d, n=name: (n, d)
        )

    return st.one_of(*(params_of(n) for n in STAGE_NAMES))


def _stage_gives_stage_or_config_error(choice: tuple[str, dict[str, Any]]) -> None:
    name, params = choice
    cls = get_stage_class(name)
    # a ConfigError by the house rule; the runner also turns a TypeError (a parameter of the wrong
    # kind) into a SessionConfigError, and StageCompatibilityError is the toolkit's own, clear
    clear_error_or_value(lambda: cls(**params), (ConfigError, StageCompatibilityError, TypeError))


@short_run(150)
@given(_stage_params())
def test_stage_parameters_give_a_stage_or_a_config_error(
    choice: tuple[str, dict[str, Any]],
) -> None:
    _stage_gives_stage_or_config_error(choice)


@pytest.mark.slow
@long_run(3000)
@given(_stage_params())
def test_stage_parameters_long(choice: tuple[str, dict[str, Any]]) -> None:
    _stage_gives_stage_or_config_error(choice)


@short_run(40)
@given(st.lists(MUTATION, min_size=1, max_size=3))
def test_building_a_mutated_session_gives_parts_or_a_clear_error(mutations: list[Any]) -> None:
    doc = _mutated(mutations)
    doc.pop("decoder", None), doc.pop("controller", None), doc.pop("compare", None)
    config, _ = clear_error_or_value(lambda: parse_session(doc), (SessionConfigError,))
    if config is not None:
        clear_error_or_value(lambda: build_parts(config), (BCIError,))
