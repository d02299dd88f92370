"""Figures the reliability suite reports (faults tried, inputs tried, chaos run numbers).

They are printed past pytest's output capture, one ``FIGURE`` line each, so that a plain ``pytest -q``
run shows them and they can be copied into the README.
"""

from __future__ import annotations

import pytest

__all__ = ["report"]


def report(config: pytest.Config, line: str) -> None:
    """Print ``FIGURE <line>`` on the terminal even while output is captured."""
    capture = config.pluginmanager.getplugin("capturemanager")
    assert capture is not None
    with capture.global_and_fixture_disabled():
        print(f"\nFIGURE {line}", flush=True)
