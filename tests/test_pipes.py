"""A file the linker reads from a pipe: ``-T <(cpp -P fw.ld.S)`` in a make recipe, a FIFO. Its
bytes can be read once: altlink never reads them (they would be taken from the linker), and
never opens a FIFO (its writer would find its reader gone, or altlink would wait for one).

- A script altlink cannot read may define any name: a callback no object defines is checked
  in the linked image (ALT007), not refused before the link (ALT006); one the script does not
  define either fails in the linker, as without altlink.
- An object from a pipe: ld refuses it ('Illegal seek'), and so does the link through altlink
  (before: altlink took the object's first bytes, ld read the rest as an empty script, and the
  link made an image without the object, exit 0).
- ``altlink check -T <(...)``: altlink is the script's only reader, and reads it once."""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from toolchain import INCLUDE, LDSCRIPTS, ROOT, SIMPLE_LD, env_without_altlink_vars, run, write

from altlink.filekind import read_head

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-ld", "bash")),
    reason="the AArch64 GNU toolchain or bash is missing")

# A callback my_cb that no object defines.
MAIN = r"""
#include <altlink/alternative.h>
	.text
	.globl _start
	.type _start, %function
_start:
	alternative_cb my_cb
	mov x2, #0
	alternative_cb_end
	mov x8, #93
	svc #0
	.size _start, . - _start
	.type helper, %function
	.globl helper
helper:	ret
	.size helper, . - helper
"""


def altlink_words(*args) -> str:
    return shlex.join([sys.executable, "-m", "altlink", *map(str, args)])


def sh(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """``script`` run by bash (for its ``<(...)``), altlink from this checkout."""
    env = env_without_altlink_vars()
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.fixture
def fw(tmp_path: Path) -> Path:
    write(tmp_path / "main.S", MAIN)
    run(["aarch64-linux-gnu-gcc", "-DALT_NCAPS=4", f"-I{INCLUDE}", "-c", "main.S", "-o",
         "main.o"], cwd=tmp_path)
    write(tmp_path / "fw.ld", SIMPLE_LD + "my_cb = helper;\n")
    write(tmp_path / "bad.ld", SIMPLE_LD + "my_cb = 0x10;\n")
    write(tmp_path / "none.ld", SIMPLE_LD)
    return tmp_path


def link_words(script: str, out: str) -> str:
    return (altlink_words("link", "--ncaps", "4", "--manifest", out + ".json", "--",
                          "aarch64-linux-gnu-ld", "-L", LDSCRIPTS, "main.o", "-o", out + ".elf")
            + f" -T {script}")


def test_a_callback_defined_by_a_piped_script_is_checked_in_the_image(fw):
    p = sh(link_words("fw.ld", "file") + "\n" + link_words("<(cat fw.ld)", "pipe"), fw)
    assert p.returncode == 0, p.stderr
    assert (fw / "pipe.elf").read_bytes() == (fw / "file.elf").read_bytes()
    assert (fw / "pipe.json").read_text().replace("pipe.elf", "file.elf") \
        == (fw / "file.json").read_text()


def test_a_bad_callback_of_a_piped_script_is_alt007_after_the_link(fw):
    p = sh(link_words("<(cat bad.ld)", "bad"), fw)
    assert p.returncode == 1, p.stderr
    assert "ALT007: callback my_cb (defined by /dev/fd/" in p.stderr
    assert "a pipe altlink does not read) is at 0x10" in p.stderr
    assert not (fw / "bad.elf").exists() and not (fw / "bad.json").exists()


def test_a_callback_no_script_defines_still_fails_in_the_linker(fw):
    p = sh(link_words("<(cat none.ld)", "none"), fw)
    assert p.returncode == 3, p.stderr
    assert "undefined reference to `my_cb'" in p.stderr
    assert not (fw / "none.elf").exists()


LIB = r"""
#include <altlink/alternative.h>
	.text
	.globl f2
	.type f2, %function
f2:
	alternative_cb dat
	mov x1, #1
	alternative_cb_end
	ret
	.size f2, . - f2
	.data
	.globl dat
	.type dat, %object
dat:	.quad 0
	.size dat, 8
"""


def test_the_objects_a_piped_script_names_are_checked_in_the_image(fw):
    """``INPUT(lib.o)`` in a piped script: altlink does not see lib.o before the link; its
    entries get an object's checks in the linked image (its callback is data: ALT007)."""
    write(fw / "lib.S", LIB)
    run(["aarch64-linux-gnu-gcc", "-DALT_NCAPS=4", f"-I{INCLUDE}", "-c", "lib.S", "-o",
         "lib.o"], cwd=fw)
    write(fw / "inp.ld", (fw / "fw.ld").read_text() + "INPUT(lib.o)\n")
    p = sh(link_words("inp.ld", "file"), fw)
    assert p.returncode == 1 and "lib.o: error: ALT007: callback dat is in .data" in p.stderr
    p = sh(link_words("<(cat inp.ld)", "pipe"), fw)
    assert p.returncode == 1, p.stderr
    assert "pipe.elf: error: ALT007: callback dat is not in an executable section" in p.stderr
    assert not (fw / "pipe.elf").exists()


def test_a_script_from_a_fifo_is_left_to_the_linker(fw):
    """A named FIFO: altlink neither waits for its writer nor takes its text."""
    fifo = fw / "fw.fifo"
    os.mkfifo(fifo)
    text = (fw / "fw.ld").read_bytes()

    def writer():
        with open(fifo, "wb") as f:  # (waits for a reader: the linker)
            f.write(text)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    p = sh(link_words("fw.fifo", "fifo"), fw)
    t.join(timeout=10)
    assert p.returncode == 0, p.stderr
    assert not t.is_alive()
    p = sh(link_words("fw.ld", "file"), fw)
    assert (fw / "fifo.elf").read_bytes() == (fw / "file.elf").read_bytes()


def test_an_object_from_a_pipe_fails_as_in_the_bare_linker(fw):
    write(fw / "start.S", ".globl _start\n_start: ret\n")
    run(["aarch64-linux-gnu-as", "start.S", "-o", "start.o"], cwd=fw)
    bare = sh("aarch64-linux-gnu-ld -L " + shlex.quote(str(LDSCRIPTS))
              + " -T none.ld <(cat start.o) -o bare.elf", fw)
    assert bare.returncode != 0 and "Illegal seek" in bare.stderr
    p = sh(altlink_words("link", "--", "aarch64-linux-gnu-ld", "-L", LDSCRIPTS, "-T",
                         "none.ld") + " <(cat start.o) -o alt.elf", fw)
    assert p.returncode == bare.returncode, p.stderr  # (no object read: ld's own status)
    assert "Illegal seek" in p.stderr
    assert not (fw / "alt.elf").exists()


def test_check_reads_a_piped_script_once(fw):
    p = sh(altlink_words("check", "--ncaps", "4", "main.o") + " -T <(cat fw.ld)", fw)
    assert p.returncode == 0, p.stdout + p.stderr
    p = sh(altlink_words("check", "--ncaps", "4", "main.o") + " -T <(cat none.ld)", fw)
    assert p.returncode == 1 and "ALT006: callback my_cb" in p.stdout + p.stderr


def test_read_head_leaves_a_fifo_unopened(tmp_path):
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    got = []
    # (opened, the FIFO would wait for a writer forever: asked in a thread of its own)
    t = threading.Thread(target=lambda: got.append(read_head(str(fifo), 8)), daemon=True)
    t.start()
    t.join(timeout=10)
    assert got == [None]
    assert read_head(str(tmp_path), 8) is None
    write(tmp_path / "r", "12345678")
    assert read_head(str(tmp_path / "r"), 4) == b"1234"


def test_a_piped_script_is_not_remembered_past_its_command(tmp_path):
    """``linkcmd.defined_by`` (``altlink check -T``) read in one process twice, each time from
    another pipe at the same path: each call sees its own pipe's names."""
    from altlink.linkcmd import defined_by

    def through_pipe(text: str) -> dict:
        r, w = os.pipe()
        os.write(w, text.encode())
        os.close(w)
        try:
            return defined_by([f"/dev/fd/{r}"], [], [])
        finally:
            os.close(r)

    assert set(through_pipe("first = 1;\n")) == {"first"}
    assert set(through_pipe("second = 2;\n")) == {"second"}
