"""Outputs are complete or absent (issue: "never ... leave a half-written output"): ``link``,
``patch`` and ``manifest -o`` write a temporary file beside the output and rename it into place
only when it is complete, so that an earlier output stays intact until a new one replaces it.

A link that fails or is interrupted leaves none of its outputs: the earlier image, binary and
manifest are removed too (as SCons and make do), so that a stale image cannot be flashed after
a failed build. Proved by interrupting real runs: ``altlink link`` with a slow fake linker (it
sleeps, then copies an image to its ``-o``) gets SIGINT or SIGTERM before the linker, while it
runs, and while altlink writes a 48 MiB image, binary and manifest; afterwards none of the
three is there (or all three are the new, consistent set), and no temporary file (``.NAME.*``)
or orphaned linker is left. In-process runs interrupt each step in turn. ``patch`` and
``manifest -o`` keep an earlier output intact when interrupted; the patcher writes only inside
the sites and refuses a manifest made for another image.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fuzz import fuzz as harness
from fuzz import mutate, seeds
from toolchain import ROOT, env_without_altlink_vars

from altlink import cli

pytestmark = pytest.mark.skipif(not seeds.have_toolchain(),
                                reason="the AArch64 GNU toolchain is not installed")

BIG = 48 << 20  # bytes of .rodata in the big image: a window for a signal while writing

# The fuzz harness's fake linker (copies --copy-from= to its -o), slowed: it touches "started",
# then sleeps $SLEEP before it writes.
SLOW_LD = seeds.FAKE_LD.replace('exec cp', 'touch started\nsleep "${SLEEP:-0}"\nexec cp')


@pytest.fixture(scope="module")
def seed_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("failsafe") / "seeds"
    harness.prepare_seeds(str(d), firmware=False)
    # The big image: the seed's objects and a 48 MiB .rodata, linked by GNU ld.
    big = d / "big.S"
    big.write_text(f'\t.section .rodata, "a"\n\t.globl blob\nblob:\t.fill {BIG}, 1, 0x5a\n')
    subprocess.run([seeds.CC, "-c", big, "-o", d / "big.o"], check=True)
    subprocess.run([seeds.LD, "-static", "-nostdlib", "-Ttext=0x400000", "-e", "_start",
                    "--build-id=none", d / "seed-v417.o", d / "libcb.a", d / "big.o", "-o",
                    d / "big.elf"], check=True)
    (d / "slow-ld").write_text(SLOW_LD)
    (d / "slow-ld").chmod(0o755)
    return d


OUTS = ("out.elf", "out.alt.json", "out.bin")


def link_argv(seed_dir: Path, image: str) -> list[str]:
    return ["link", "--ncaps", "4", "-o", "out.elf", "--manifest", "out.alt.json", "--bin",
            "out.bin", "--", str(seed_dir / "slow-ld"), f"--copy-from={seed_dir / image}",
            str(seed_dir / "seed-v417.o"), str(seed_dir / "libcb.a"), "-o", "out.elf"]


def old_outputs(d: Path) -> dict[str, bytes]:
    old = {n: f"an earlier {n}\n".encode() for n in OUTS}
    for n, data in old.items():
        (d / n).write_bytes(data)
    return old


def temporaries(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith("."))


def consistent_new_set(d: Path) -> bool:
    """The three outputs are a complete new set: the manifest's hashes are the files'."""
    try:
        m = json.loads((d / "out.alt.json").read_text())
    except (OSError, ValueError):
        return False
    sha = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    return (m["image"]["sha256"] == sha(d / "out.elf")
            and m["image"]["bin"]["sha256"] == sha(d / "out.bin"))


def assert_no_outputs(d: Path, allow_new: bool, old: dict[str, bytes] | None = None) -> None:
    """No temporary file, and none of the three outputs (the earlier ones removed too); or,
    with ``allow_new``, the complete new set; or, with ``old``, the earlier ones untouched
    (a signal before altlink's own code runs)."""
    assert temporaries(d) == [], temporaries(d)
    if allow_new and consistent_new_set(d):
        return
    if old is not None and all((d / n).exists() and (d / n).read_bytes() == old[n]
                               for n in OUTS):
        return
    assert [n for n in OUTS if (d / n).exists()] == []


def start(seed_dir: Path, d: Path, image: str, sleep: float) -> subprocess.Popen:
    env = env_without_altlink_vars()
    env.update(PYTHONPATH=str(ROOT), SLEEP=str(sleep))
    # SIGINT as a terminal gives it: a suite started in the background (nohup, `&` in a
    # script) passes it on ignored, and Python then never raises KeyboardInterrupt.
    return subprocess.Popen([sys.executable, "-m", "altlink", *link_argv(seed_dir, image)],
                            cwd=d, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.fixture(autouse=True)
def _sigint_raises(monkeypatch):
    """In-process runs get KeyboardInterrupt for SIGINT even when the suite was started with
    SIGINT ignored (in the background)."""
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        yield
        signal.signal(signal.SIGINT, previous)
    else:
        yield


def wait_for(cond, timeout: float = 60.0, step: float = 0.002) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return False


# ---- interrupting real runs --------------------------------------------------------------------

MOMENTS = ["startup", "linker", "writing"]


SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
SIGNAL_IDS = ["SIGINT", "SIGTERM", "SIGHUP"]
# (SIGHUP: the terminal went away; the default ended the process on the spot, its temporary
# files left behind)


def interrupted_status(sig: int) -> int:
    return 128 + sig


@pytest.mark.parametrize("sig", SIGNALS, ids=SIGNAL_IDS)
@pytest.mark.parametrize("moment", MOMENTS)
@pytest.mark.parametrize("earlier", [True, False], ids=["earlier-outputs", "no-outputs"])
def test_interrupted_link_leaves_no_outputs_and_no_temporaries(seed_dir, tmp_path, sig,
                                                                moment, earlier):
    d = tmp_path
    old = old_outputs(d) if earlier else None
    if moment == "startup":  # as soon as the process exists: before anything is written
        # (the linker sleeps 3 s: a small link's whole run is well under 50 ms now, and would
        # end before the signal)
        proc = start(seed_dir, d, "v417.elf", 3)
        time.sleep(0.05)
    elif moment == "linker":  # while the linker runs (it sleeps 3 s before writing)
        proc = start(seed_dir, d, "v417.elf", 3)
        assert wait_for(lambda: (d / "started").exists()), "the linker never started"
        time.sleep(0.2)
    else:  # while altlink writes the outputs of a 48 MiB image
        proc = start(seed_dir, d, "big.elf", 0)
        assert wait_for(lambda: any(n.startswith((".out.bin.", ".out.alt.json."))
                                    for n in temporaries(d)) or proc.poll() is not None)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    interrupted = interrupted_status(sig)
    if moment == "startup":  # maybe before cli.main runs: Python's own handling, any message
        assert proc.returncode != 0
    elif moment == "linker":
        assert proc.returncode == interrupted, err
        assert "Traceback" not in err
        time.sleep(3.5)  # the linker was stopped with altlink: it writes nothing later
    else:  # the signal came while writing, or just after the run ended
        assert proc.returncode in (interrupted, 0), err
        assert "Traceback" not in err
    assert_no_outputs(d, allow_new=moment == "writing", old=old if moment == "startup" else None)


def test_interrupt_while_writing_lands_inside_the_writing(seed_dir, tmp_path):
    """The "writing" moment above is real: the temporary outputs exist for a while before the
    renames (so the signal lands while altlink writes, not after)."""
    proc = start(seed_dir, tmp_path, "big.elf", 0)
    seen = wait_for(lambda: any(n.startswith(".out.bin.") for n in temporaries(tmp_path)))
    proc.communicate(timeout=120)
    assert seen and proc.returncode == 0
    assert consistent_new_set(tmp_path) and temporaries(tmp_path) == []


# ---- interrupting each step, in-process ----------------------------------------------------------

STEPS = [
    ("altlink.link.collect", "the checks of the link set"),
    ("altlink.linker.Linker.finish", "the linker"),
    ("altlink.link.check_after_link", "the checks of the image"),
    ("altlink.link.cross_check", "the cross-check"),
    ("altlink.rawbin.raw_pieces", "the raw binary"),
    ("altlink.manifest.build", "the manifest"),
    ("altlink.manifest.dump", "the manifest's text"),
]


def link_in_process(seed_dir: Path, d: Path, monkeypatch, target: str, fake,
                    earlier: bool = True) -> tuple[int, str, dict[str, bytes] | None]:
    """``cli.main`` of a link in ``d`` with ``target`` replaced by ``fake``: the exit status,
    the last line on stderr, and the earlier outputs put there first (None: none)."""
    monkeypatch.setattr(target, fake)
    monkeypatch.chdir(d)
    monkeypatch.setenv("SLEEP", "0")
    old = old_outputs(d) if earlier else None
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    rc = cli.main(link_argv(seed_dir, "v417.elf"), out=io.StringIO())
    lines = err.getvalue().splitlines()
    return rc, lines[-1] if lines else "", old


@pytest.mark.parametrize("target", [s for s, _ in STEPS], ids=[w for _, w in STEPS])
@pytest.mark.parametrize("earlier", [True, False], ids=["earlier-outputs", "no-outputs"])
def test_link_interrupted_at_each_step(seed_dir, tmp_path, monkeypatch, target, earlier):
    def interrupt(*a, **k):
        raise KeyboardInterrupt

    rc, last, old = link_in_process(seed_dir, tmp_path, monkeypatch, target, interrupt, earlier)
    assert (rc, last) == (130, "altlink: interrupted")
    assert_no_outputs(tmp_path, allow_new=False)


def test_interrupt_as_the_linker_starts_stops_it(seed_dir, tmp_path, monkeypatch):
    """SIGINT while the linker is being started (signals held): the interrupt comes once
    altlink knows the linker, which is stopped, so it cannot write its temporary image after
    altlink removed it."""
    real = os.posix_spawnp

    def spawn_then_interrupt(*a, **k):
        pid = real(*a, **k)
        os.kill(os.getpid(), signal.SIGINT)  # held: handled when the start is complete
        return pid

    monkeypatch.setenv("SLEEP", "1")  # the slow linker writes its -o after a second
    monkeypatch.setattr(os, "posix_spawnp", spawn_then_interrupt)
    monkeypatch.chdir(tmp_path)
    old_outputs(tmp_path)
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    assert cli.main(link_argv(seed_dir, "v417.elf"), out=io.StringIO()) == 130
    time.sleep(1.5)  # a linker left running would have written by now
    assert_no_outputs(tmp_path, allow_new=False)


@pytest.mark.parametrize("where", ["altlink.cli._EarlyLink",
                                   "altlink.linker.LinkStart._new_linker"])
def test_interrupt_between_the_linker_s_start_and_its_holder(seed_dir, tmp_path, monkeypatch,
                                                             where):
    """An interrupt that lands right after the linker's start was made, before anything holds
    it (main's ``early``, the LinkStart's caller): main still stops the linker and removes its
    temporary image (cli.main closes what ``linker.close_unclosed`` lists). Seen once under
    load: a SIGTERM at start-up left ``.out.elf.*.elf`` behind."""
    from altlink import linker as linkermod

    real = linkermod.LinkStart._new_linker

    def cut_off(*a, **k):
        if where.endswith("_new_linker"):
            real(*a, **k)  # (its temporary image made: an interrupt inside LinkStart)
        raise KeyboardInterrupt

    monkeypatch.setenv("SLEEP", "1")  # the slow linker writes its -o after a second
    monkeypatch.setattr(where, cut_off)
    monkeypatch.chdir(tmp_path)
    old_outputs(tmp_path)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert cli.main(link_argv(seed_dir, "v417.elf"), out=io.StringIO()) == 130
    time.sleep(1.5)  # a linker left running would have written by now
    assert temporaries(tmp_path) == []
    assert not linkermod._unclosed


@pytest.mark.parametrize("sig, said", [(signal.SIGTERM, "altlink: terminated"),
                                       (signal.SIGHUP, "altlink: hangup")])
def test_sigterm_runs_the_cleanup_in_process(seed_dir, tmp_path, monkeypatch, sig, said):
    """SIGTERM and SIGHUP are turned into an exception while cli.main runs (the default would
    end the process without running any ``finally``), and the handler is put back afterwards."""
    def term(*a, **k):
        os.kill(os.getpid(), sig)
        time.sleep(1)  # the handler raises here
        raise AssertionError("the signal did not interrupt")

    before = signal.getsignal(sig)
    # In this small link the image's checks and the cross-check run in altlink's own
    # process (a large one forks the image's checks), while a forked one writes the outputs.
    rc, last, old = link_in_process(seed_dir, tmp_path, monkeypatch,
                                    "altlink.link.check_after_link", term)
    assert (rc, last) == (128 + sig, said)
    assert_no_outputs(tmp_path, allow_new=False)
    assert signal.getsignal(sig) == before


def test_an_ignored_sighup_stays_ignored(seed_dir, tmp_path, monkeypatch):
    """Under ``nohup`` (SIGHUP ignored) a hangup does not end the link: it is not turned into
    an exit, in altlink or in its forked writer."""
    from altlink import link as linkmod

    real = linkmod.check_after_link

    def hup(*a, **k):
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.2)
        return real(*a, **k)

    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        rc, last, old = link_in_process(seed_dir, tmp_path, monkeypatch,
                                        "altlink.link.check_after_link", hup)
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)
    assert rc == 0, last


@pytest.mark.parametrize("command", ["patch", "manifest"])
def test_single_output_commands_interrupted_while_writing(seed_dir, tmp_path, monkeypatch,
                                                          command):
    """``patch -o`` and ``manifest -o``: interrupted between writing the temporary file and
    renaming it, the earlier output is intact and the temporary file is gone."""
    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").write_bytes(b"earlier\n")
    if command == "patch":
        argv = ["patch", str(seed_dir / "v417.elf"), "--manifest",
                str(seed_dir / "v417.alt.json"), "--caps", "0,1", "-o", "out", "--emulate",
                "patch_cb"]
    else:
        argv = ["manifest", "--ncaps", "4", str(seed_dir / "v417.elf"), "-o", "out"]
    monkeypatch.setattr(os, "fsync", interrupt)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert cli.main(argv, out=io.StringIO()) == 130
    assert (tmp_path / "out").read_bytes() == b"earlier\n"
    assert temporaries(tmp_path) == []


# ---- failed links ----------------------------------------------------------------------------


def failing_link(seed_dir: Path, d: Path, how: str) -> list[str]:
    argv = link_argv(seed_dir, "v417.elf")
    if how == "linker":  # exit 3: the linker fails
        (d / "false-ld").write_text("#!/bin/sh\necho 'ld: cannot find -lnothing' >&2\nexit 1\n")
        (d / "false-ld").chmod(0o755)
        argv[argv.index("--") + 1] = str(d / "false-ld")
    elif how == "cross-check":  # exit 1: the "linked" image lost an entry's site (ALT013)
        data = (seed_dir / "v417.elf").read_bytes()
        sec = mutate.layout(data).named(".altinstructions")[0]
        buf = bytearray(data)
        mutate.poke(buf, sec[3] + 4 * 12 + 10, 1, 8)  # orig_len of entry 4: 4 -> 8
        (d / "other.elf").write_bytes(buf)
        argv[argv.index("--") + 2] = f"--copy-from={d / 'other.elf'}"
    else:  # exit 2: an object that is not ELF
        (d / "junk.o").write_bytes(b"\x7fELF" + b"\0" * 8)
        argv.insert(argv.index("--") + 3, str(d / "junk.o"))
    return argv


@pytest.mark.parametrize("how,rc", [("linker", 3), ("cross-check", 1), ("input", 2)])
@pytest.mark.parametrize("earlier", [True, False], ids=["earlier-outputs", "no-outputs"])
def test_failed_link_leaves_no_outputs(seed_dir, tmp_path, monkeypatch, how, rc, earlier):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLEEP", "0")
    if earlier:
        old_outputs(tmp_path)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert cli.main(failing_link(seed_dir, tmp_path, how), out=io.StringIO()) == rc
    assert_no_outputs(tmp_path, allow_new=False)


def test_link_replaces_all_three_outputs_together(seed_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLEEP", "0")
    old_outputs(tmp_path)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert cli.main(link_argv(seed_dir, "v417.elf"), out=io.StringIO()) == 0
    assert consistent_new_set(tmp_path) and temporaries(tmp_path) == []
    assert (tmp_path / "out.elf").read_bytes() == (seed_dir / "v417.elf").read_bytes()


# ---- the forked writer -----------------------------------------------------------------------
# The raw binary and the manifest are written by a forked process while altlink checks the image.


def no_children() -> bool:
    """This process has no child left, running or unwaited-for."""
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_writer_failure_is_the_link_failure(seed_dir, tmp_path, monkeypatch):
    """An error while writing (here, in the forked process) is altlink's: its one line, exit 2,
    no outputs, no temporary files, no process left."""
    from altlink.errors import AltlinkError

    def fail(*a, **k):
        raise AltlinkError("out.alt.json: the disk is full (a test)")

    rc, last, old = link_in_process(seed_dir, tmp_path, monkeypatch, "altlink.manifest.build",
                                    fail)
    assert (rc, last) == (2, "out.alt.json: the disk is full (a test)")
    assert_no_outputs(tmp_path, allow_new=False)
    assert no_children()


def test_writer_is_stopped_when_a_check_fails(seed_dir, tmp_path, monkeypatch):
    """The image fails the cross-check while the outputs are being written: the writer is
    ended, and nothing it wrote is left."""
    def slow_build(*a, **k):
        time.sleep(30)  # still writing when the check fails

    monkeypatch.setattr("altlink.manifest.build", slow_build)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLEEP", "0")
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    start = time.monotonic()
    assert cli.main(failing_link(seed_dir, tmp_path, "cross-check"), out=io.StringIO()) == 1
    assert time.monotonic() - start < 20, "altlink waited for the writer"
    assert_no_outputs(tmp_path, allow_new=False)
    assert no_children()


def test_with_other_threads_the_outputs_are_written_in_process(seed_dir, tmp_path, monkeypatch):
    """A process with other threads (an SCons -j build) does not fork: the same outputs."""
    import threading

    monkeypatch.setenv("SLEEP", "0")
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    got = {}
    real_fork = os.fork
    for how in ("forked", "threads"):
        d = tmp_path / how
        d.mkdir()
        monkeypatch.chdir(d)
        stop = threading.Event()
        t = threading.Thread(target=stop.wait) if how == "threads" else None
        if t:
            t.start()
        try:
            forks: list[int] = []
            monkeypatch.setattr(os, "fork", lambda forks=forks: forks.append(1) or real_fork())
            assert cli.main(link_argv(seed_dir, "v417.elf"), out=io.StringIO()) == 0
        finally:
            stop.set()
            if t:
                t.join()
        assert bool(forks) == (how == "forked")  # the outputs' writer, the image's checks
        got[how] = [(d / n).read_bytes() for n in OUTS]
    assert got["forked"] == got["threads"]


# ---- the patcher ------------------------------------------------------------------------------


def site_ranges(manifest: dict, key: str) -> list[tuple[int, int]]:
    return [(e["site"][key], e["site"]["length"]) for e in manifest["entries"]]


def changed(a: bytes, b: bytes) -> list[int]:
    assert len(a) == len(b)
    return [i for i, (x, y) in enumerate(zip(a, b)) if x != y]


@pytest.mark.parametrize("name,caps,emulate", [
    ("v417", "0,1,2,3", "patch_cb"), ("v61", "0,1,2", "patch_cb,spin_cb"), ("v61", "", ""),
])
def test_patcher_writes_only_inside_the_sites(seed_dir, tmp_path, name, caps, emulate):
    m = json.loads((seed_dir / f"{name}.alt.json").read_text())
    img, binary = seed_dir / f"{name}.elf", seed_dir / f"{name}.bin"
    argv = ["patch", img, "--manifest", seed_dir / f"{name}.alt.json", "--caps", caps, "-o",
            tmp_path / "p.elf", "--bin", tmp_path / "p.bin"]
    if emulate:
        argv += ["--emulate", emulate]
    assert cli.main([str(a) for a in argv], out=io.StringIO()) == 0
    for src, out, key in ((img, tmp_path / "p.elf", "file_offset"),
                          (binary, tmp_path / "p.bin", "bin_offset")):
        diff = changed(src.read_bytes(), out.read_bytes())
        allowed = site_ranges(m, key)
        assert all(any(o <= i < o + n for o, n in allowed) for i in diff), diff
        assert bool(diff) == bool(caps)  # and it did patch


def test_patcher_refuses_a_manifest_for_another_image(seed_dir, tmp_path, capsys):
    img = tmp_path / "in.elf"
    data = bytearray((seed_dir / "v417.elf").read_bytes())
    # One byte of a site: a byte outside everything patching reads would be an image
    # post-processed after the link, which the manifest still patches.
    site = json.loads((seed_dir / "v417.alt.json").read_text())["entries"][0]["site"]
    data[site["file_offset"]] ^= 1
    img.write_bytes(data)
    out = tmp_path / "p.elf"
    out.write_bytes(b"earlier\n")
    rc = cli.main(["patch", str(img), "--manifest", str(seed_dir / "v417.alt.json"), "--caps",
                   "0", "-o", str(out)], out=io.StringIO())
    assert rc == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and str(img) in err[0] and "sha256" in err[0]
    assert out.read_bytes() == b"earlier\n" and temporaries(tmp_path) == []


@pytest.mark.parametrize("sig", SIGNALS, ids=SIGNAL_IDS)
def test_signal_between_the_renames_waits_for_all_three(seed_dir, tmp_path, monkeypatch, sig):
    """The three renames are one step: a signal after the image is in place, before the
    manifest is, would leave a new image beside the old manifest. It is held until all three
    are renamed (the run still reports the interruption, and as an interrupted link removes
    its outputs: all three new ones, or none, never a mix)."""
    from altlink import outputs

    commit = outputs.commit
    calls = []

    def commit_then_signal(tmp, target):
        calls.append(target)
        commit(tmp, target)
        if len(calls) == 1:
            os.kill(os.getpid(), sig)
            time.sleep(0.5)  # an unblocked signal is handled here

    monkeypatch.setattr(outputs, "commit", commit_then_signal)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLEEP", "0")
    old_outputs(tmp_path)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    rc = cli.main(link_argv(seed_dir, "v417.elf"), out=io.StringIO())
    assert rc == interrupted_status(sig)
    assert len(calls) == 3
    assert_no_outputs(tmp_path, allow_new=True)
