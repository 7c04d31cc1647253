"""Helpers shared by the LSL tests: waiting on a condition, outlets, pulling what arrived.

Imported normally (``from lsl_testing import wait_until``): ``tests/`` is on ``sys.path`` because
``tests/conftest.py`` lives there.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], object], timeout_s: float, poll_s: float = 0.01) -> bool:
    """Poll ``condition`` until it is true or ``timeout_s`` passes; return its last truth value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return bool(condition())
        time.sleep(poll_s)
