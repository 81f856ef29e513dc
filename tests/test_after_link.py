"""What a link does after its linker ends, made cheaper: the forked copy's result read without
waiting for the copy's end (``forkmap.Forked.result``), ALT014's function map made from the
symbol table's columns for some thousands of symbols (``reach.FunctionMap``), and the
records' arrays of the cross-check made while the linker runs (``RecordColumns.arrays``)."""
from __future__ import annotations

import os
import shutil
import time

import pytest
from test_symbols_columns import same_functions_map
from toolchain import compile, link, write

from altlink import forkmap
from altlink.elf import read_elf


def best_of(elf, addr):
    """The reference's function at ``addr``: the best label of the decoded symbols there."""
    from altlink.symbols import best_label

    return best_label(elf.symbols_at_value_py(addr))


@pytest.mark.skipif(not forkmap.can_fork(), reason="no fork here")
def test_a_forked_result_is_read_without_waiting_for_the_copys_end(monkeypatch):
    """The copy closes its end of the pipe once its result is written: ``result`` has it
    then, while the copy is still ending (here, a copy whose end takes 2 s), and the copy is
    reaped later, by the next ``start``."""
    real_exit = os._exit

    def slow_exit(code):  # (in the copy only: the test's process never calls it)
        time.sleep(2)
        real_exit(code)

    monkeypatch.setattr(os, "_exit", slow_exit)
    child = forkmap.Forked(lambda: ("done", os.getpid()))
    t = time.monotonic()
    child.start()
    got, pid = child.result()
    assert got == "done" and time.monotonic() - t < 1.5
    child.cancel()  # (nothing left to cancel)
    assert forkmap._ending == [pid]
    monkeypatch.setattr(os, "_exit", real_exit)
    time.sleep(2.5)
    other = forkmap.Forked(lambda: 7)
    other.start()  # reaps the first copy, ended by now
    assert forkmap._ending == [] and other.result() == 7
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    forkmap.wait_ending()  # (the second copy, if it was still ending: waited for)
    assert forkmap._ending == []
    # A copy still ending is waited for by ``wait_ending`` (a link's end: its time is then
    # the command's children's, as ``wait4`` counts it).
    monkeypatch.setattr(os, "_exit", slow_exit)
    child = forkmap.Forked(lambda: os.getpid())
    child.start()
    pid = child.result()
    assert forkmap._ending == [pid]
    t = time.monotonic()
    forkmap.wait_ending()
    assert forkmap._ending == [] and time.monotonic() - t > 1
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


@pytest.mark.skipif(not shutil.which("aarch64-linux-gnu-ld"), reason="no AArch64 toolchain")
def test_the_function_map_of_some_thousands_of_symbols_from_their_columns(tmp_path):
    """An image of 3,000 functions (under the 20,000 symbols from which an index of all the
    symbols pays): its ``FunctionMap`` reads the table's columns, and decodes only the
    functions a walk reaches; the map is the reference's."""
    import numpy  # noqa: F401 - loaded, as in a link of many entries

    from altlink.reach import FunctionMap, callback_reach

    lines = ["\t.text"]
    for k in range(3000):
        lines += [f"\t.globl f{k}", f"\t.type f{k}, %function", f"f{k}:",
                  f"\tbl f{(k + 1) % 3000}" if k % 7 == 0 else "\tnop", "\tret",
                  f"\t.size f{k}, .-f{k}"]
    obj = compile(write(tmp_path / "many.S", "\n".join(lines) + "\n"), tmp_path / "many.o")
    image = link([obj], tmp_path / "many.elf", flags=["-e", "f0"])
    elf = read_elf(str(image))
    assert 3000 < elf.symtab.size // 24 < 20_000
    funcs = FunctionMap(elf)
    assert funcs._syms is None and elf._symbols is None  # from the columns, none decoded
    got = callback_reach(elf, {"f0": funcs.starts[0]}, [(funcs.starts[1] + 4, 4, 0)], funcs)
    assert elf._symbols is None and len(funcs._decoded) < 10
    ref = callback_reach(read_elf(str(image)), {"f0": funcs.starts[0]},
                         [(funcs.starts[1] + 4, 4, 0)],
                         FunctionMap(read_elf(str(image)), columns=False))
    assert got == ref and [r.what for r in got] == ["site"]
    assert same_functions_map(image) == 3000
    # A callback's function named by its address: from the column of values (made for the
    # first lookup), not by searching the table's bytes; the same symbol.
    from altlink.symbols import Symbolizer

    fresh = read_elf(str(image))
    names = Symbolizer(fresh)
    at = [names.function_at(a) for a in funcs.starts[:5]]
    assert getattr(fresh, "_symtab_columns", None) is not None and fresh._symbols is None
    assert at == [best_of(read_elf(str(image)), a) for a in funcs.starts[:5]]
    assert [s.name for s in at] == ["f0", "f1", "f2", "f3", "f4"]


@pytest.mark.skipif(not forkmap.can_fork() or not shutil.which("aarch64-linux-gnu-ld"),
                    reason="no fork here, or no AArch64 binutils")
@pytest.mark.parametrize("cpus", [2, 4])
def test_the_image_checks_stay_here_beside_a_forked_writer(tmp_path, monkeypatch, cpus, forks):
    """A link that writes a manifest forks its writer; on two CPUs the image's checks then
    run here, after the cross-check (a third process would only slow the writer), on more
    beside it in a forked copy as without a writer: the same findings either way."""
    from test_crosscheck_fast import NCAPS, planted_links

    from altlink import link as link_mod
    from altlink.link import LinkRequest, link
    from altlink.linkset import Options
    from altlink.table import Profile
    from altlink.values import astuple

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(link_mod, "FORK_CROSS_CHECK_FROM", 0)
    monkeypatch.setattr(link_mod, "FORK_IMAGE_CHECKS_FROM", 0)
    monkeypatch.setattr(forkmap, "cpus", lambda: cpus)
    opts = Options(Profile("linux-v4.17", NCAPS))
    for k, (cmd, codes) in enumerate(planted_links(tmp_path)):
        got = {}
        for manifest in (True, False):
            forks.clear()
            res = link(LinkRequest(cmd, str(tmp_path / f"fw{k}.elf"),
                                   manifest=str(tmp_path / f"fw{k}.json") if manifest else None,
                                   options=opts, cache_dir=None))
            assert len(forks) == (1 if manifest and cpus == 2 else 2 if manifest else 1)
            got[manifest] = [astuple(f) for f in res.findings]
        assert got[True] == got[False] and {f[0] for f in got[True]} == codes


@pytest.mark.skipif(not forkmap.can_fork() or not shutil.which("aarch64-linux-gnu-ld"),
                    reason="no fork here, or no AArch64 binutils")
def test_the_image_checks_of_few_symbols_stay_here(tmp_path, monkeypatch, forks):
    """The image's checks are forked only where they cost more than the fork
    (``link.FORK_IMAGE_CHECKS_FROM``, by the image's symbols): a link whose cross-check is
    worth it but whose image has few symbols checks its image here; the same findings."""
    from test_crosscheck_fast import NCAPS, planted_links

    from altlink import link as link_mod
    from altlink.link import LinkRequest, link
    from altlink.linkset import Options
    from altlink.table import Profile
    from altlink.values import astuple

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(link_mod, "FORK_CROSS_CHECK_FROM", 0)
    opts = Options(Profile("linux-v4.17", NCAPS))
    for k, (cmd, codes) in enumerate(planted_links(tmp_path)):
        got = {}
        for limit in (0, link_mod.FORK_IMAGE_CHECKS_FROM):
            monkeypatch.setattr(link_mod, "FORK_IMAGE_CHECKS_FROM", limit)
            forks.clear()
            res = link(LinkRequest(cmd, str(tmp_path / f"fw{k}.elf"), options=opts,
                                   cache_dir=None))
            assert len(forks) == (1 if limit == 0 else 0)
            got[limit] = [astuple(f) for f in res.findings]
        assert len(set(map(tuple, map(tuple, got.values())))) == 1
        assert {f[0] for f in got[0]} == codes
