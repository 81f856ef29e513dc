"""Fixtures for the whole suite."""
import kbuild as _kbuild  # the name kbuild is the fixture below
import pytest
from toolchain import ALTLINK_ENV


@pytest.fixture(scope="session")
def record_cache(tmp_path_factory):
    """One cache of object records for the session's links: tests that link the same objects
    again read their records from it, as a user's relinks do."""
    return tmp_path_factory.mktemp("records")


@pytest.fixture(autouse=True)
def _no_altlink_env(monkeypatch, record_cache):
    """The user's ALTLINK_ABI, ALTLINK_CACHE_SIZE, ... (every variable the package reads) must
    not change what a test sees, nor their record cache be written."""
    for k in ALTLINK_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("ALTLINK_CACHE_DIR", str(record_cache))


@pytest.fixture(scope="session", params=_kbuild.BUILDS, ids=_kbuild.build_id)
def kernel_build(request):
    """Linux built for arm64 with Kbuild's LD pointed at altlink's launcher form
    (tests/kbuild.py): Debian's linux-source-6.1 with the GNU toolchain and with ``LLVM=1``,
    and linux-source-6.12 with the GNU toolchain: minutes the first time, then its links
    only."""
    kernel, toolchain = request.param
    _kbuild.skip_without_source(kernel)
    return _kbuild.build(toolchain=toolchain, kernel=kernel)


@pytest.fixture(scope="session")
def kbuild(kernel_build):
    """The O= directory of that build: vmlinux, vmlinux.alt.json, System.map, the modules."""
    return kernel_build.out


@pytest.fixture
def forks(monkeypatch):
    """A list that gets an item for each forked copy (``forkmap.Forked``) started while the
    test runs: whether work was shared, or done here alone."""
    from altlink import forkmap

    started: list[int] = []
    start = forkmap.Forked.start
    monkeypatch.setattr(forkmap.Forked, "start", lambda self: (started.append(1), start(self))[1])
    return started
