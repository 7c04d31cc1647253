"""Suite-wide settings: warnings are errors (pyproject), every test has a timeout, LSL ids are unique."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def source_id(request: pytest.FixtureRequest) -> str:
    """A source_id no other test (or concurrent test run) uses, so LSL resolves only our stream."""
    return f"bci-test-{request.node.name[:40]}-{uuid.uuid4().hex[:12]}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Anything above 3 minutes is a hang (MNE-LSL's rule); slow tests get 10.
    for item in items:
        if item.get_closest_marker("timeout") is None:
            seconds = 600 if item.get_closest_marker("slow") else 180
            item.add_marker(pytest.mark.timeout(seconds))
