"""Trust in altlink's own results and behaviour (issue 15): an internal error has its own exit
status, records are keyed by altlink's own sources and validated when read, and nothing
process-wide is changed under the threads of an ``scons -j`` build."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_checks import R0_8, build
from test_link import FW_LD, MAIN_S, asm, linker_command
from toolchain import ROOT, env_without_altlink_vars, write

needs_toolchain = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-ld")),
    reason="the AArch64 GNU toolchain is not installed")

# A wrapper that breaks one function of the package, then runs the command line as the
# ``altlink`` script does: the error is altlink's own, whatever the input.
BROKEN = """
import sys
import threading
import altlink.caps
def broken(table):
    raise TypeError("unexpected shape\\nof a table")
altlink.caps.header = broken
from altlink.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run_broken(tmp_path, **env):
    table = write(tmp_path / "caps.txt", "HAS_A\nHAS_B\n")
    e = env_without_altlink_vars()
    e["PYTHONPATH"] = str(ROOT)
    e.pop("ALTLINK_TRACEBACK", None)
    e.update(env)
    return subprocess.run([sys.executable, "-c", BROKEN, "caps", str(table)],
                          capture_output=True, text=True, env=e)


def test_an_internal_error_exits_4_with_one_line(tmp_path):
    p = _run_broken(tmp_path)
    assert p.returncode == 4, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("altlink: internal error (a bug in altlink")
    assert "TypeError: unexpected shape\\nof a table" in lines[0]
    assert "Traceback" not in p.stderr
    assert p.stdout == ""


def test_an_internal_error_shows_the_traceback_when_asked(tmp_path):
    p = _run_broken(tmp_path, ALTLINK_TRACEBACK="1")
    assert p.returncode == 4
    assert "Traceback (most recent call last)" in p.stderr
    assert "in broken" in p.stderr
    assert p.stderr.splitlines()[-1].startswith("altlink: internal error")


def test_help_and_readme_give_the_exit_statuses():
    p = subprocess.run([sys.executable, "-m", "altlink", "--help"], capture_output=True,
                       text=True, env={**env_without_altlink_vars(), "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0
    assert "4 altlink's own failure" in p.stdout and "ALTLINK_TRACEBACK=1" in p.stdout
    readme = (ROOT / "README.md").read_text()
    assert "| 4 | altlink's own failure" in readme


def test_fuzz_signature_keeps_the_package_frames_in_a_clone_named_altlink(tmp_path):
    """The fuzz harness names a failure by its deepest frame in the package. A frame of a file
    under some other folder named ``altlink`` (a clone of the repository is one, and holds the
    tests and the harness) is not the package's."""
    from fuzz import fuzz as harness

    from altlink import forkmap

    ns: dict = {}
    exec(compile("def cb(x):\n    raise ValueError(x)\n",
                 str(tmp_path / "altlink" / "tests" / "cb.py"), "exec"), ns)
    try:
        forkmap.fork_map(ns["cb"], [1])  # one share: runs here, calls cb
    except ValueError as e:
        sig = harness._signature(e)
    assert sig.startswith("ValueError at forkmap.py:"), sig


# -- records made by other code are not read ----------------------------------------------------

def _altlink_from(package_root: Path, *args, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m altlink`` from the package under ``package_root``, run elsewhere (``-m``
    puts the working directory first on the path)."""
    e = env_without_altlink_vars()
    e.pop("ALTLINK_CACHE_DIR", None)
    e["PYTHONPATH"] = str(package_root)
    return subprocess.run([sys.executable, "-m", "altlink", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, env=e)


@needs_toolchain
def test_a_change_to_altlink_makes_the_records_again(tmp_path):
    """The record cache is keyed by altlink's own code: a copy of the package whose ALT001
    message says something else, linking with the same cache, says its own message."""
    main = asm(tmp_path, "main", MAIN_S)
    bad = build(tmp_path, "bad", R0_8 + "\tent site0, r0, 1, 4, 8\n")  # ALT001
    script = write(tmp_path / "fw.ld", FW_LD)
    cache = tmp_path / "cache"
    cmd = linker_command("ld", [main, bad], str(tmp_path / "fw.elf"), script)
    args = ["link", "-o", tmp_path / "fw.elf", "--abi", "linux-v4.17", "--ncaps", "4",
            "--cache-dir", cache, "--", *cmd]
    first = _altlink_from(ROOT, *args, cwd=tmp_path)
    assert "Traceback" not in first.stderr
    assert first.returncode == 1 and "ALT001: replacement is 8 bytes" in first.stderr, first.stderr
    assert any(p.is_file() for p in cache.rglob("*"))

    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "altlink", copy / "altlink",
                    ignore=shutil.ignore_patterns("__pycache__"))
    checks = copy / "altlink" / "check_entries.py"
    text = checks.read_text()
    assert text.count('f"replacement is {e.alt_len} bytes') == 1
    checks.write_text(text.replace('f"replacement is {e.alt_len} bytes',
                                   'f"the replacement takes {e.alt_len} bytes'))
    second = _altlink_from(copy, *args, cwd=tmp_path)
    assert second.returncode == 1
    assert "ALT001: the replacement takes 8 bytes" in second.stderr, second.stderr
    # and the original code, again, reads its own records
    assert _altlink_from(ROOT, *args, cwd=tmp_path).stderr == first.stderr


# -- records read from the cache are checked, field by field ------------------------------------

def _edit_record(path: Path, edit) -> None:
    """Rewrite a record file as a hand or another program might: its plain data, edited."""
    import pickle

    plain = list(pickle.loads(path.read_bytes()))  # altlink's own record: trusted here
    edit(plain)
    path.write_bytes(pickle.dumps(tuple(plain)))


@needs_toolchain
@pytest.mark.parametrize("edit", [
    pytest.param(lambda t: t.__setitem__(2, ("0x1",)), id="flags-a-string"),
    pytest.param(lambda t: t.__setitem__(2, "abc"), id="flags-is-a-string"),
    pytest.param(lambda t: (t.__setitem__(4, []), t.__setitem__(5, ())), id="findings-removed"),
    pytest.param(lambda t: t.__setitem__(4, [t[4][0][:3] + (None,) + t[4][0][4:]]),
                 id="message-not-a-string"),
    pytest.param(lambda t: t.__setitem__(8, tuple(t[8])), id="summary-not-bytes"),
    pytest.param(lambda t: t.__setitem__(8, t[8][:-1]), id="summary-rows-cut"),
    pytest.param(lambda t: t.__setitem__(7, (("f",), (2,), (".text",))), id="definition-short"),
])
def test_a_record_of_the_wrong_shape_is_made_again(tmp_path, monkeypatch, edit):
    """A record whose flags hold a string crashed a later check with a traceback; one whose
    findings were removed made an object with an ALT001 error check clean. Each is a cache
    miss: the record is made again, and the check says what it says without a cache."""
    from test_cache import count_made, options, record_findings

    o = build(tmp_path, "a", R0_8 + "\tent site0, r0, 1, 4, 8\n")  # ALT001
    v417 = options("--abi", "linux-v4.17", "--ncaps", "4")
    cache = tmp_path / "cache"
    want = record_findings([o], v417, None)
    assert [w[0] for w in want] == ["ALT001"]
    assert record_findings([o], v417, cache) == want
    (rec,) = [p for p in cache.rglob("*") if p.is_file() and not p.name.startswith(".")]
    _edit_record(rec, edit)
    made = count_made(monkeypatch)
    assert record_findings([o], v417, cache) == want
    assert made == ["a.o"]  # made again, and kept again
    assert record_findings([o], v417, cache) == want and made == ["a.o"]


@needs_toolchain
def test_the_cache_directory_is_private(tmp_path):
    from test_cache import options, record_findings

    o = build(tmp_path, "a", R0_8 + "\tent site0, r0, 1, 4, 4\n")
    cache = tmp_path / "cache"
    record_findings([o], options("--abi", "linux-v4.17", "--ncaps", "4"), cache)
    dirs = [cache, *[p for p in cache.rglob("*") if p.is_dir()]]
    assert len(dirs) == 2
    for d in dirs:
        assert d.stat().st_mode & 0o777 == 0o700, d


# -- nothing process-wide changes under the other threads of an scons -j build ------------------

def _mode_of_a_new_file(d: Path, name: str) -> int:
    p = d / name
    fd = os.open(p, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o666)
    os.close(fd)
    return p.stat().st_mode & 0o777


def test_temporary_files_leave_the_umask_alone(tmp_path, monkeypatch):
    """altlink set the umask to 0 and back for every temporary file: a thread that made a file
    in between got mode 0666. Here another thread makes a file at once after each change of
    the umask (the worst a scheduler can do); none may get a mode the umask forbids, and
    altlink's own outputs get the mode a new file gets."""
    from altlink import outputs

    real = os.umask
    other = tmp_path / "other"
    other.mkdir()
    seen: list[int] = []

    def umask_then_another_thread_runs(mask: int) -> int:
        old = real(mask)
        t = threading.Thread(target=lambda: seen.append(
            _mode_of_a_new_file(other, f"f{len(seen)}")))
        t.start()
        t.join()
        return old

    old = real(0o022)
    try:
        monkeypatch.setattr(os, "umask", umask_then_another_thread_runs)
        tmp = outputs.temp_path(str(tmp_path / "out.bin"))
        outputs.write_bytes(str(tmp_path / "m.json"), b"{}\n")
        wide = outputs._umask()
        monkeypatch.undo()
        seen.append(_mode_of_a_new_file(other, "after"))
    finally:
        real(old)
    assert all(m == 0o644 for m in seen), [oct(m) for m in seen]
    assert Path(tmp).stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644
    assert wide == 0o022


def test_the_collector_pause_is_counted_across_threads():
    """Two links in two threads: the first enters the pause, the second enters, the first
    leaves while the second still works. The collector stays off until the last leaves, and
    is on again after (it was on before)."""
    import gc

    from altlink.gcpause import collector_paused

    assert gc.isenabled()
    steps = [threading.Event() for _ in range(4)]
    states: dict[str, bool] = {}

    def first():
        with collector_paused():
            steps[0].set()
            steps[1].wait(10)
        states["first left"] = gc.isenabled()
        steps[2].set()

    def second():
        steps[0].wait(10)
        with collector_paused():
            steps[1].set()
            steps[2].wait(10)
            states["second working"] = gc.isenabled()
        states["second left"] = gc.isenabled()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    try:
        assert states == {"first left": False, "second working": False, "second left": True}
        assert gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_pause_keeps_a_collector_that_was_off_off():
    import gc

    from altlink.gcpause import collector_paused

    gc.disable()
    try:
        with collector_paused():
            with collector_paused():
                pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_what_the_altlink_command_keeps_is_freed_only_where_its_process_ends(tmp_path):
    """``gcpause.keep`` holds nothing for callers in a process that goes on (SCons, the
    tests); once ``process_ends`` (the ``altlink`` command, which ends with ``os._exit``), it
    holds what it is given, and the collector stays off after the command's pause."""
    code = """
import gc, weakref
from altlink import gcpause

class Thing:
    pass

def kept_alive():
    thing = Thing()
    ref = weakref.ref(thing)
    gcpause.keep(thing)
    del thing
    return ref() is not None

print(kept_alive())
gcpause.process_ends()
with gcpause.collector_paused():
    pass
print(kept_alive(), gc.isenabled())
"""
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert got == ["False", "True", "False"]


def test_each_thread_has_its_own_capstone_handle():
    """A capstone handle is not to be shared between threads; each thread gets its own, and
    threads disassembling at once get what one thread gets."""
    from concurrent.futures import ThreadPoolExecutor

    from altlink import insn

    here = insn._cs()
    assert insn._cs() is here
    with ThreadPoolExecutor(2) as pool:
        others = list(pool.map(lambda _: insn._cs(), range(2)))
    assert all(o is not here for o in others)
    words = [0x14000010, 0x54000040, 0x90000000, 0xd503201f, 0x8b020020] * 40
    code = b"".join(w.to_bytes(4, "little") for w in words)
    want = insn.disasm(code, 0x400000)
    insn._word_text.cache_clear()
    insn._target_template.cache_clear()
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda a: insn.disasm(code, a), [0x400000] * 8))
    assert all(g == want for g in got)


# -- source lines come from the DWARF line tables, read here ------------------------------------

LINES_C = """#define ALT_NCAPS 2
#include <altlink/alternative.h>

__attribute__((noinline)) int f(void)
{
	int x;
	asm volatile(ALTERNATIVE("mov %w0, #0", "mov %w0, #1", 1) : "=r"(x));
	return x;
}

int g(void)
{
	int y;
	asm volatile(ALTERNATIVE("mov %w0, #0", "adr %x0, .", 1) : "=r"(y));
	return y;
}

void _start(void) { for (;;) f(); }
"""
LINES_S = """#define ALT_NCAPS 2
#include <altlink/alternative.h>
	.text
	.globl h
	.type h, %function
h:
	nop
	alternative_insn "mov x0, #1", "mov x0, #2", 1
	alternative_insn "mov x0, #3", "adr x0, .", 1
	ret
"""
LINES_LD = """ENTRY(_start)
SECTIONS { . = 0x400000; .text : { *(.text .text.*) } INCLUDE alternatives.ld
  /DISCARD/ : { *(.eh_frame .note.gnu.property) } }
"""


def _a_path_with(tmp_path: Path, addr2line: str | None) -> str:
    """A PATH whose only program is an ``addr2line``: the host's (which does not know
    AArch64), or one that answers a wrong line for every address."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if addr2line == "host":
        (bin_dir / "addr2line").symlink_to(shutil.which("addr2line") or "/bin/false")
    elif addr2line == "wrong":
        tool = bin_dir / "addr2line"
        tool.write_text("#!/bin/sh\nwhile read a; do echo wrong.c:999; done\n")
        tool.chmod(0o755)
    return str(bin_dir)


@needs_toolchain
@pytest.mark.parametrize("addr2line", ["host", "wrong"])
def test_source_lines_are_the_lines_the_compiler_was_given(tmp_path, addr2line):
    """gcc -g of C, and of assembly: a finding in an object names the line of its
    ALTERNATIVE, and a linked manifest each site's, whatever addr2line is on the PATH (none
    runs)."""
    from toolchain import GNU_CC, INCLUDE, LDSCRIPTS, run

    src = tmp_path / "src"
    c = write(src / "lines.c", LINES_C)
    s = write(src / "more.S", LINES_S)
    objs = []
    for f in (c, s):
        o = tmp_path / f"{f.stem}.o"
        run([*GNU_CC, "-g", "-O2", "-ffreestanding", "-fno-pic", "-nostdlib", f"-I{INCLUDE}",
             "-c", f, "-o", o])
        objs.append(o)
    env = {"PATH": _a_path_with(tmp_path, addr2line)}
    check = _altlink_env(env, "check", "--ncaps", "2", *[o.name for o in objs], cwd=tmp_path)
    assert check.returncode == 1, check.stderr
    errors = sorted(check.stdout.splitlines())
    assert [e.split(": error: ")[0] for e in errors] == ["src/lines.c:14", "src/more.S:9"], \
        errors
    assert all(": error: ALT008: " in e for e in errors)

    good_c = write(src / "good.c", LINES_C.replace('"adr %x0, ."', '"mov %w0, #2"'))
    good_s = write(src / "good.S", LINES_S.replace('"adr x0, ."', '"mov x0, #4"'))
    objs = []
    for f in (good_c, good_s):
        o = tmp_path / f"{f.stem}-{f.suffix[1:]}.o"
        run([*GNU_CC, "-g", "-O2", "-ffreestanding", "-fno-pic", "-nostdlib", f"-I{INCLUDE}",
             "-c", f, "-o", o])
        objs.append(o)
    ld = shutil.which("aarch64-linux-gnu-ld")
    link = _altlink_env(env, "link", "-o", "fw.elf", "--manifest", "fw.alt.json", "--ncaps",
                        "2", "--source-lines", "--", ld, f"-L{LDSCRIPTS}", "-T",
                        write(tmp_path / "fw.ld", LINES_LD), *objs, "-o", "fw.elf",
                        cwd=tmp_path)
    assert link.returncode == 0, link.stderr
    import json

    m = json.loads((tmp_path / "fw.alt.json").read_text())
    assert sorted(e["site"]["source"] for e in m["entries"]) == [
        "src/good.S:8", "src/good.S:9", "src/good.c:14", "src/good.c:7"]


def _altlink_env(env: dict, *args, cwd: Path) -> subprocess.CompletedProcess:
    e = env_without_altlink_vars()
    e["PYTHONPATH"] = str(ROOT)
    e.update(env)
    return subprocess.run([sys.executable, "-m", "altlink", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=e)


# -- dependencies as used ------------------------------------------------------------------------

NO_UNICORN = """
import sys
sys.modules["unicorn"] = None  # as if it were not installed: importing it raises ImportError
from altlink.cli import main
sys.exit(main(sys.argv[1:]))
"""


@needs_toolchain
def test_emulate_without_unicorn_is_one_line_naming_the_extra(tmp_path_factory, tmp_path):
    from fuzz import fuzz as harness

    seeds = tmp_path_factory.mktemp("seeds")
    harness.prepare_seeds(str(seeds), firmware=False)
    e = env_without_altlink_vars()
    e["PYTHONPATH"] = str(ROOT)
    out = tmp_path / "p.elf"
    proc = subprocess.run([sys.executable, "-c", NO_UNICORN, "patch", seeds / "v61.elf",
                           "--manifest", seeds / "v61.alt.json", "--caps", "LSE", "-o", out,
                           "--emulate", "patch_cb"], capture_output=True, text=True, env=e,
                          cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == ("altlink: --emulate needs the unicorn emulator, an optional part: "
                           "pip install 'altlink[emulate]'\n")
    assert not out.exists()


def test_runtime_dependencies_are_the_ones_used():
    """unicorn only with the emulate (and test) extra, lief not at all; pyelftools, capstone
    and SCons at run time (each imported by the package: docs/dependencies.md)."""
    from importlib.metadata import requires

    reqs = requires("altlink") or []
    runtime = {r.split("==")[0] for r in reqs if "extra ==" not in r}
    assert runtime == {"pyelftools", "capstone", "numpy", "scons"}, reqs
    unicorn = [r for r in reqs if r.startswith("unicorn")]
    assert unicorn and all('extra == "emulate"' in r or 'extra == "test"' in r
                           for r in unicorn), unicorn
    assert not any(r.startswith("lief") for r in reqs)
