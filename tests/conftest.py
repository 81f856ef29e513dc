"""Fixtures for the whole suite."""
import pytest


@pytest.fixture(scope="session")
def record_cache(tmp_path_factory):
    """One cache of object records for the session's links: tests that link the same objects
    again read their records from it, as a user's relinks do."""
    return tmp_path_factory.mktemp("records")


@pytest.fixture(autouse=True)
def _no_altlink_env(monkeypatch, record_cache):
    """The user's ALTLINK_ABI or ALTLINK_NCAPS must not change what a test sees, nor their
    record cache be written."""
    for k in ("ALTLINK_ABI", "ALTLINK_NCAPS"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("ALTLINK_CACHE_DIR", str(record_cache))
