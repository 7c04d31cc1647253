"""No file format the toolkit reads can execute code: the loaders never unpickle and never build
Python objects from YAML. A source scan keeps it so (the fuzz tests check the behaviour)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bci", "decoders", "stimulation")

FORBIDDEN = {
    "pickle / joblib / dill loads": re.compile(
        r"\b(c?pickle|joblib|dill|marshal|shelve)\.loads?\("
    ),
    "np.load with allow_pickle=True": re.compile(r"allow_pickle\s*=\s*True"),
    "yaml.load (not safe_load)": re.compile(r"\byaml\.(load|load_all|unsafe_load|full_load)\("),
    "yaml's unsafe loaders": re.compile(r"\b(Unsafe|Full)?Loader\b\s*[,)]|yaml\.Loader\b"),
    "torch.load": re.compile(r"\btorch\.load\("),
    "eval / exec": re.compile(r"(?<![.\w])(eval|exec)\("),
}


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("what", sorted(FORBIDDEN))
def test_no_loader_can_execute_code(what: str) -> None:
    pattern = FORBIDDEN[what]
    hits = []
    for path in _sources():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if pattern.search(code) and not (what == "torch.load" and "weights_only=True" in code):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not hits, f"{what} found:\n" + "\n".join(hits)


def test_the_scan_sees_the_sources() -> None:
    assert len(_sources()) > 50
