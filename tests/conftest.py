"""Fixtures for the whole suite."""
import pytest


@pytest.fixture(autouse=True)
def _no_altlink_env(monkeypatch):
    """The user's ALTLINK_ABI or ALTLINK_NCAPS must not change what a test sees."""
    for k in ("ALTLINK_ABI", "ALTLINK_NCAPS"):
        monkeypatch.delenv(k, raising=False)
