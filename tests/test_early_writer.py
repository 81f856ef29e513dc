"""The outputs' writer forked while the linker still runs (``linkoutputs.EarlyWriter``): it
makes or reads the codes' texts while the linker runs, waits for the image, reads it itself
and writes the raw binary and the manifest. The linkers here sleep before they link, so that
the link always reaches its writer with the linker still running: the outputs are byte for
byte those of a link whose writer runs after the linker (or in this process), and a link
that fails on the way leaves nothing behind, the copy included."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from toolchain import LDSCRIPTS, synthetic_firmware, write

from altlink import cli, forkmap, linkoutputs
from altlink import link as link_mod

pytestmark = pytest.mark.skipif(
    not forkmap.can_fork() or not shutil.which("aarch64-linux-gnu-ld"),
    reason="no fork here, or no AArch64 binutils")

# A linker that takes its time: the link's own work is done before it ends.
SLOW_LD = '#!/bin/sh\nsleep {delay}\nexec aarch64-linux-gnu-ld "$@"\n'
# One that writes its output, then fails.
FAILING_LD = '#!/bin/sh\nsleep 1\naarch64-linux-gnu-ld "$@"\nexit 3\n'


def _script(path: Path, text: str) -> str:
    write(path, text)
    path.chmod(0o755)
    return str(path)


class _Made(list):
    """The EarlyWriters the links of the test made; ``on``: whether a link may make one (a
    link that may not forks its writer after the linker, as one whose linker ended first)."""

    on = True


@pytest.fixture
def early(monkeypatch) -> _Made:
    """The EarlyWriters the links of the test make (``_Made``; each one's ``wrote``: its
    result, once read)."""
    made = _Made()

    class Counted(linkoutputs.EarlyWriter):
        wrote = None

        def __init__(self, *args):
            made.append(self)
            super().__init__(*args)

        def result(self):
            self.wrote = super().result()
            return self.wrote

    monkeypatch.setattr(link_mod, "EarlyWriter", lambda *a: Counted(*a) if made.on else None)
    return made


def _link(tmp_path: Path, where: str, ld: str, *more: str, cache: Path | None = None) -> int:
    """``altlink link`` of the synthetic firmware (24 objects) into ``tmp_path/where``, with
    its manifest and raw binary, in this process."""
    fw = synthetic_firmware()
    d = Path(fw.dir)
    out = tmp_path / where
    out.mkdir(exist_ok=True)
    args = ["link", "-o", str(out / "fw.elf"), "--manifest", str(out / "fw.json"),
            "--bin", str(out / "fw.bin"), "--abi", "linux-v4.17", "--cap-table",
            str(d / fw.cap_table), *more]
    args += ["--cache-dir", str(cache)] if cache else ["--no-cache"]
    return cli.main([*args, "--", ld, "-static", "--build-id=none", "-L", str(LDSCRIPTS),
                     "-T", str(d / fw.ldscript), *(str(d / o) for o in fw.objects),
                     "-o", str(out / "fw.elf")])


def _outputs(tmp_path: Path, where: str) -> dict[str, bytes]:
    return {n: (tmp_path / where / n).read_bytes() for n in ("fw.elf", "fw.json", "fw.bin")}


def test_the_early_writer_writes_what_the_writer_after_the_link_writes(
        tmp_path, monkeypatch, early):
    """The same image, raw binary and manifest, byte for byte, from the writer forked while
    the linker runs as from the one forked after it and from this process's, with the codes'
    texts made from the records' columns in the copy (``early_texts``), or read back from
    those kept by an earlier link (``textcache``), or made by the writer itself."""
    slow = _script(tmp_path / "slow-ld", SLOW_LD.format(delay=1))
    monkeypatch.chdir(tmp_path)
    early.on = False  # (forked after the linker, as where it ends first)
    assert _link(tmp_path, "after", slow) == 0
    early.on = True
    want = _outputs(tmp_path, "after")
    can_fork = forkmap.can_fork
    monkeypatch.setattr(forkmap, "can_fork", lambda: False)
    assert _link(tmp_path, "here", slow) == 0
    monkeypatch.setattr(forkmap, "can_fork", can_fork)
    assert not early and _outputs(tmp_path, "here") == want
    # the codes' texts made from the records' packed columns, in the copy
    monkeypatch.setattr(link_mod, "ARRAYS_FROM_ENTRIES", 0)
    assert _link(tmp_path, "columns", slow) == 0
    assert len(early) == 1 and _outputs(tmp_path, "columns") == want
    assert early[0].wrote is True  # (the copy's outputs, not this process's)
    # read back from those an earlier link kept
    monkeypatch.setattr(link_mod, "TEXTS_KEPT_FROM", 0)
    cache = tmp_path / "cache"
    for k in range(2):
        assert _link(tmp_path, f"kept{k}", slow, cache=cache) == 0
        assert _outputs(tmp_path, f"kept{k}") == want
    assert len(early) == 3 and list((cache / "texts").iterdir())
    assert all(w.wrote is True for w in early)
    # none made before the image: the writer's own
    monkeypatch.setattr(link_mod, "ARRAYS_FROM_ENTRIES", 10 ** 9)
    monkeypatch.setattr(link_mod, "TEXTS_KEPT_FROM", 10 ** 9)
    assert _link(tmp_path, "none", slow) == 0
    assert len(early) == 4 and _outputs(tmp_path, "none") == want and early[3].wrote is True


def _left(tmp_path: Path, where: str) -> list[str]:
    return sorted(os.listdir(tmp_path / where))


def _no_child_left() -> None:
    forkmap.wait_ending()
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_a_linker_that_fails_leaves_no_output_and_no_copy(tmp_path, monkeypatch, early, capsys):
    """The linker fails while the writer waits for its image: the copy is ended, and
    nothing is written, not even the image the linker wrote."""
    monkeypatch.chdir(tmp_path)
    failing = _script(tmp_path / "failing-ld", FAILING_LD)
    assert _link(tmp_path, "out", failing) != 0
    assert len(early) == 1 and _left(tmp_path, "out") == []
    assert "the linker failed (exit 3)" in capsys.readouterr().err
    _no_child_left()


def test_a_refused_link_leaves_no_output_and_no_copy(tmp_path, monkeypatch, early):
    """The checks after the linker refuse the link (ALT013: a script that lets
    --gc-sections drop the table) while the copy writes: it is ended, and nothing is
    written."""
    from test_crosscheck_fast import NCAPS, planted_links

    from altlink.findings import has_errors
    from altlink.link import LinkRequest, link
    from altlink.linkset import Options
    from altlink.table import Profile

    monkeypatch.chdir(tmp_path)
    slow = _script(tmp_path / "slow-ld", SLOW_LD.format(delay=1))
    cmd, codes = next(planted_links(tmp_path))
    assert codes == {"ALT013"}
    out = tmp_path / "out"
    out.mkdir()
    res = link(LinkRequest([slow, *cmd[1:]], str(out / "x.elf"), manifest=str(out / "x.json"),
                           binary=str(out / "x.bin"),
                           options=Options(Profile("linux-v4.17", NCAPS)), cache_dir=None))
    assert has_errors(res.findings) and {f.code for f in res.findings} >= codes
    assert len(early) == 1 and res.written == [] and _left(tmp_path, "out") == []
    _no_child_left()


def test_a_relocatable_link_with_a_manifest_is_refused_as_before(tmp_path, monkeypatch, early,
                                                                capsys):
    """``ld -r`` with a manifest asked: the copy finds a relocatable object and writes
    nothing (its result, False); the link says why, as it did with the writer after it."""
    monkeypatch.chdir(tmp_path)
    slow = _script(tmp_path / "slow-ld", SLOW_LD.format(delay=1))
    fw = synthetic_firmware()
    d = Path(fw.dir)
    (tmp_path / "out").mkdir()
    rc = cli.main(["link", "-o", "out/part.o", "--manifest", "out/part.json", "--abi",
                   "linux-v4.17", "--no-cache", "--", slow, "-r",
                   *(str(d / o) for o in fw.objects[:3]), "-o", "out/part.o"])
    assert rc != 0 and len(early) == 1 and _left(tmp_path, "out") == []
    assert "relocatable object (ld -r)" in capsys.readouterr().err
    _no_child_left()


def test_the_copy_ends_without_writing_where_no_word_comes(tmp_path):
    """The copy that the link ends without its word (the pipe closed: the linker failed, or
    the link's process ended) writes nothing and says so (False)."""
    made = tmp_path / "m.json"
    w = linkoutputs.EarlyWriter(None, None, str(tmp_path / "none.elf"), None, str(made),
                                None, None)
    assert w.result() is False and not made.exists()
    _no_child_left()


def test_the_copy_fails_where_the_images_digests_never_come(tmp_path, monkeypatch, early,
                                                           capsys):
    """The copy writes the manifest's end with the image's digests that the link's process
    tells it (``EarlyWriter.tell``): where its pipe is closed without them, it fails (it does
    not hang, nor write a manifest without them), and the link leaves nothing behind."""
    monkeypatch.chdir(tmp_path)
    slow = _script(tmp_path / "slow-ld", SLOW_LD.format(delay=1))
    told = []
    monkeypatch.setattr(linkoutputs.EarlyWriter, "tell",
                        lambda self, facts: (told.append(facts), self._close()))
    assert _link(tmp_path, "out", slow) != 0
    assert len(early) == 1 and len(told) == 1 and _left(tmp_path, "out") == []
    assert set(told[0]) == {"image", "sections", "bin"}
    assert "before it gave its writer the image's digests" in capsys.readouterr().err
    _no_child_left()


def test_a_raw_binary_alone(tmp_path, monkeypatch, early):
    """A link that asks for the raw binary alone forks no early writer (this process writes
    the raw binary where a manifest's writer runs beside it): its raw binary and image are
    those of the link with a manifest."""
    monkeypatch.chdir(tmp_path)
    slow = _script(tmp_path / "slow-ld", SLOW_LD.format(delay=1))
    assert _link(tmp_path, "both", slow) == 0
    want = _outputs(tmp_path, "both")
    fw = synthetic_firmware()
    d = Path(fw.dir)
    out = tmp_path / "bin"
    out.mkdir()
    assert cli.main(["link", "-o", str(out / "fw.elf"), "--bin", str(out / "fw.bin"),
                     "--abi", "linux-v4.17", "--cap-table", str(d / fw.cap_table),
                     "--no-cache", "--", slow, "-static", "--build-id=none", "-L",
                     str(LDSCRIPTS), "-T", str(d / fw.ldscript),
                     *(str(d / o) for o in fw.objects), "-o", str(out / "fw.elf")]) == 0
    assert len(early) == 1  # (the link with a manifest's)
    assert (out / "fw.bin").read_bytes() == want["fw.bin"]
    assert (out / "fw.elf").read_bytes() == want["fw.elf"]
    _no_child_left()
