"""altlink/alternative.h, the linker fragment and the sample firmware, built with the
real toolchains and read back with pyelftools (an independent reader, not altlink's own)."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from toolchain import LDSCRIPTS, ROOT, BuildError, compile, link, qemu, write

PROFILES = ("linux-v4.17", "linux-v6.1")
TOOLCHAINS = ("gnu", "llvm")
NCAPS = 3
R_AARCH64_PREL32 = 261
CB_BIT = 0x8000
WARNINGS = ("-Wall", "-Wextra", "-Werror")
SAMPLE = ROOT / "samples" / "fw"


def defines(profile: str, ncaps: int | None = NCAPS) -> list[str]:
    out = [] if ncaps is None else [f"ALT_NCAPS={ncaps}"]
    return out + (["ALTLINK_ABI_LINUX_V61"] if profile == "linux-v6.1" else [])


# ---- the sources: two sites per form, of different lengths and capabilities ----------


@dataclass(frozen=True)
class Site:
    cap: int
    orig: tuple[str, ...]
    repl: tuple[str, ...]


SITES = (
    Site(2, ("movz x0, #1",), ("movz x0, #2",)),
    Site(1, ("movz x1, #3", "movz x2, #4"), ("movz x1, #5", "movz x2, #6")),
)
CALLBACK = "my_cb"


def c_str(insns) -> str:
    return '"' + "\\n\\t".join(insns) + '"'


def asm_lines(insns) -> str:
    return "".join(f"\t{i}\n" for i in insns)


def src_c_alternative(profile: str) -> str:
    fns = "".join(
        f'void fn_{k}(void)\n{{\n\tasm volatile("site_{k}:\\n" '
        f'ALTERNATIVE({c_str(s.orig)}, "repl_{k}:\\n\\t" {c_str(s.repl)}, {s.cap})'
        ' ::: "x0", "x1", "x2");\n}\n'
        for k, s in enumerate(SITES)
    )
    return "#include <altlink/alternative.h>\n" + fns


def src_c_callback(profile: str) -> str:
    def cb_args(s: Site) -> str:
        cap = f"{s.cap}, " if profile == "linux-v6.1" else ""
        return f"{c_str(s.orig)}, {cap}{CALLBACK}"

    fns = "".join(
        f'void fn_{k}(void)\n{{\n\tasm volatile("site_{k}:\\n" ALTERNATIVE_CB({cb_args(s)})'
        ' ::: "x0", "x1", "x2");\n}\n'
        for k, s in enumerate(SITES)
    )
    return (
        "#include <altlink/alternative.h>\n"
        f"alt_callback_fn {CALLBACK};\n"
        f"void {CALLBACK}(struct alt_instr *alt, uint32_t *origptr, uint32_t *updptr, int nr_inst)\n"
        "{\n\t(void)alt; (void)origptr; (void)updptr; (void)nr_inst;\n}\n" + fns
    )


def src_asm_if(profile: str) -> str:
    return "".join(
        f"alternative_if {s.cap}\nrepl_{k}:\n{asm_lines(s.repl)}"
        f"alternative_else\nsite_{k}:\n{asm_lines(s.orig)}alternative_endif\n"
        for k, s in enumerate(SITES)
    )


def src_asm_if_not(profile: str) -> str:
    return "".join(
        f"alternative_if_not {s.cap}\nsite_{k}:\n{asm_lines(s.orig)}"
        f"alternative_else\nrepl_{k}:\n{asm_lines(s.repl)}alternative_endif\n"
        for k, s in enumerate(SITES)
    )


def src_asm_else_nop_endif(profile: str) -> str:
    # The site holds no source text of its own: it starts where the macro is used.
    return "".join(
        f"site_{k}:\nalternative_if {s.cap}\nrepl_{k}:\n{asm_lines(s.repl)}alternative_else_nop_endif\n"
        for k, s in enumerate(SITES)
    )


def src_asm_insn(profile: str) -> str:
    return "".join(
        f'site_{k}: alternative_insn "{"; ".join(s.orig)}", "repl_{k}: {"; ".join(s.repl)}", {s.cap}\n'
        for k, s in enumerate(SITES)
    )


def src_asm_cb(profile: str) -> str:
    def args(s: Site) -> str:
        return f"{s.cap}, {CALLBACK}" if profile == "linux-v6.1" else CALLBACK

    # The callback is left undefined here (C defines its own): the relocation names it either way.
    return "".join(
        f"alternative_cb {args(s)}\nsite_{k}:\n{asm_lines(s.orig)}alternative_cb_end\n"
        for k, s in enumerate(SITES)
    )


def asm_file(body: str) -> str:
    return "#include <altlink/alternative.h>\n\t.text\n" + body


# form -> (file suffix, source generator, is a callback form, is the site a run of NOPs)
FORMS = {
    "C ALTERNATIVE": (".c", src_c_alternative, False, False),
    "C ALTERNATIVE_CB": (".c", src_c_callback, True, False),
    "asm alternative_if": (".S", src_asm_if, False, False),
    "asm alternative_if_not": (".S", src_asm_if_not, False, False),
    "asm alternative_else_nop_endif": (".S", src_asm_else_nop_endif, False, True),
    "asm alternative_insn": (".S", src_asm_insn, False, False),
    "asm alternative_cb": (".S", src_asm_cb, True, False),
}


def source_of(form: str, profile: str) -> tuple[str, str]:
    suffix, gen, _, _ = FORMS[form]
    text = gen(profile)
    return suffix, (asm_file(text) if suffix == ".S" else text)


# ---- reading an object back ----------------------------------------------------------


def read_elf(path: Path) -> ELFFile:
    return ELFFile(io.BytesIO(path.read_bytes()))


@dataclass(frozen=True)
class Place:
    """A resolved relocation target: section index and offset, or an undefined symbol's name."""

    shndx: int | str
    offset: int
    symbol: str | None = field(default=None, compare=False)  # the symbol it was named by


class Obj:
    def __init__(self, path: Path):
        self.elf = read_elf(path)
        self.symtab = self.elf.get_section_by_name(".symtab")
        self.symbols = {s.name: s for s in self.symtab.iter_symbols() if s.name}

    def section(self, name: str):
        return self.elf.get_section_by_name(name)

    def resolve(self, rel) -> Place:
        sym = self.symtab.get_symbol(rel["r_info_sym"])
        if sym["st_info"]["type"] == "STT_SECTION":
            return Place(sym["st_shndx"], rel["r_addend"])
        return Place(sym["st_shndx"], sym["st_value"] + rel["r_addend"], sym.name)

    def at(self, name: str) -> Place:
        sym = self.symbols[name]
        return Place(sym["st_shndx"], sym["st_value"])

    def bytes_at(self, place: Place, size: int) -> bytes:
        return self.elf.get_section(place.shndx).data()[place.offset : place.offset + size]


def reference_words(tmp_path: Path, toolchain: str, sequences) -> list[bytes]:
    """What the assembler itself makes of each instruction sequence."""
    body = "".join(asm_lines(seq) for seq in sequences)
    obj = compile(write(tmp_path / "ref.S", "\t.text\n" + body), tmp_path / "ref.o", toolchain)
    text = read_elf(tmp_path / "ref.o").get_section_by_name(".text").data()
    out, pos = [], 0
    for seq in sequences:
        out.append(text[pos : pos + 4 * len(seq)])
        pos += 4 * len(seq)
    assert obj and pos == len(text)
    return out


# ---- the table each form emits ------------------------------------------------------


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("profile", PROFILES)
def test_table_entries(tmp_path, profile, form, toolchain):
    suffix, text = source_of(form, profile)
    _, _, is_cb, nop_site = FORMS[form]
    obj_path = compile(
        write(tmp_path / f"src{suffix}", text),
        tmp_path / "src.o",
        toolchain,
        flags=WARNINGS,
        defines=defines(profile),
    )
    obj = Obj(obj_path)

    table = obj.section(".altinstructions")
    assert table is not None
    assert table["sh_flags"] == SH_FLAGS.SHF_ALLOC
    assert table["sh_addralign"] == 4
    data = table.data()
    assert len(data) == 12 * len(SITES)

    rela = obj.section(".rela.altinstructions")
    relocs = {r["r_offset"]: r for r in rela.iter_relocations()}
    assert sorted(relocs) == sorted(12 * i + f for i in range(len(SITES)) for f in (0, 4))
    assert {r["r_info_type"] for r in relocs.values()} == {R_AARCH64_PREL32}

    origs = [("nop",) * len(s.repl) if nop_site else s.orig for s in SITES]
    refs = reference_words(tmp_path, toolchain, [*origs, *(s.repl for s in SITES)])

    sites = {obj.at(f"site_{k}"): k for k in range(len(SITES))}
    seen = set()
    for i in range(len(SITES)):
        _, _, cap, orig_len, alt_len = struct.unpack_from("<iiHBB", data, 12 * i)
        site = obj.resolve(relocs[12 * i])
        alt = obj.resolve(relocs[12 * i + 4])
        assert site in sites, f"entry {i}: site {site} is not one of the labelled sites"
        k = sites[site]
        seen.add(k)
        s = SITES[k]

        site_sec = obj.elf.get_section(site.shndx)
        assert site_sec["sh_flags"] & SH_FLAGS.SHF_EXECINSTR
        assert orig_len == 4 * len(origs[k])
        assert obj.bytes_at(site, orig_len) == refs[k]

        if is_cb:
            marker = NCAPS if profile == "linux-v4.17" else CB_BIT | s.cap
            assert cap == marker
            assert alt_len == 0
            assert alt.symbol == CALLBACK
            if alt.shndx != "SHN_UNDEF":  # defined here: the target is the function itself
                assert alt == obj.at(CALLBACK)
            else:
                assert alt.offset == 0
        else:
            assert cap == s.cap
            assert alt_len == orig_len
            assert alt == obj.at(f"repl_{k}")
            assert obj.bytes_at(alt, alt_len) == refs[len(SITES) + k]
            repl_sec = obj.elf.get_section(alt.shndx)
            assert repl_sec["sh_flags"] & SH_FLAGS.SHF_EXECINSTR
            if profile == "linux-v4.17":
                assert repl_sec.name == ".altinstr_replacement"
                assert repl_sec["sh_flags"] == SH_FLAGS.SHF_ALLOC | SH_FLAGS.SHF_EXECINSTR
            else:  # a later subsection of the site's own section
                assert alt.shndx == site.shndx
                assert obj.section(".altinstr_replacement") is None
    assert seen == set(range(len(SITES)))


# ---- what must not assemble ----------------------------------------------------------


def mismatch_source(form: str, orig: list[str], repl: list[str]) -> tuple[str, str]:
    if form == "C ALTERNATIVE":
        return ".c", (
            "#include <altlink/alternative.h>\nvoid f(void)\n{\n"
            f'\tasm volatile(ALTERNATIVE({c_str(orig)}, {c_str(repl)}, 1) ::: "x0", "x1");\n}}\n'
        )
    if form == "asm alternative_if":
        body = f"alternative_if 1\n{asm_lines(repl)}alternative_else\n{asm_lines(orig)}alternative_endif\n"
    elif form == "asm alternative_if_not":
        body = f"alternative_if_not 1\n{asm_lines(orig)}alternative_else\n{asm_lines(repl)}alternative_endif\n"
    else:
        body = f'alternative_insn "{"; ".join(orig)}", "{"; ".join(repl)}", 1\n'
    return ".S", asm_file(body)


ONE = ["movz x0, #1"]
TWO = ["movz x0, #2", "movz x1, #3"]


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
@pytest.mark.parametrize(
    "form",
    ["C ALTERNATIVE", "asm alternative_if", "asm alternative_if_not", "asm alternative_insn"],
)
@pytest.mark.parametrize("profile", PROFILES)
def test_length_mismatch_fails_to_assemble(tmp_path, profile, form, toolchain):
    suffix, same = mismatch_source(form, ONE, ["movz x0, #9"])
    compile(
        write(tmp_path / f"ok{suffix}", same),
        tmp_path / "ok.o",
        toolchain,
        defines=defines(profile),
    )

    for name, orig, repl in (("longer", ONE, TWO), ("shorter", TWO, ONE)):
        suffix, text = mismatch_source(form, orig, repl)
        src = write(tmp_path / f"{name}{suffix}", text)
        with pytest.raises(BuildError) as err:
            compile(src, tmp_path / f"{name}.o", toolchain, defines=defines(profile))
        assert err.value.returncode != 0
        if toolchain == "llvm" and form == "C ALTERNATIVE":
            # clang cannot evaluate the .if in an asm statement: its .org error names the
            # source line of the ALTERNATIVE
            assert "invalid .org offset" in err.value.stderr, err.value.stderr
            assert f"{name}.c:" in err.value.stderr
        else:
            assert f"error: altlink: replacement {name} than the site".lower() in \
                err.value.stderr.lower(), err.value.stderr


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
@pytest.mark.parametrize("suffix", [".c", ".S"])
def test_v417_without_ncaps_is_an_error(tmp_path, suffix, toolchain):
    src = write(tmp_path / f"src{suffix}", "#include <altlink/alternative.h>\n")
    with pytest.raises(BuildError) as err:
        compile(src, tmp_path / "src.o", toolchain)
    assert "ALT_NCAPS is not defined" in err.value.stderr
    assert "include the capability header generated from your table" in err.value.stderr

    # Neither linux-v6.1 nor a user of the types alone needs ALT_NCAPS.
    compile(src, tmp_path / "v61.o", toolchain, defines=["ALTLINK_ABI_LINUX_V61"])
    compile(src, tmp_path / "types.o", toolchain, defines=["ALTLINK_TYPES_ONLY"])


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
@pytest.mark.parametrize("profile", PROFILES)
def test_static_capability_out_of_range_is_an_error(tmp_path, profile, toolchain):
    limit = NCAPS if profile == "linux-v4.17" else CB_BIT  # the callback marker
    for suffix, text in (
        (
            ".c",
            f'#include <altlink/alternative.h>\nvoid f(void) {{ asm volatile(ALTERNATIVE("nop", "nop", {limit})); }}\n',
        ),
        (".S", asm_file(f'alternative_insn "nop", "nop", {limit}\n')),
    ):
        src = write(tmp_path / f"src{suffix}", text)
        with pytest.raises(BuildError) as err:
            compile(src, tmp_path / "src.o", toolchain, defines=defines(profile))
        assert "capability" in err.value.stderr and "out of range" in err.value.stderr
        compile(
            write(tmp_path / f"ok{suffix}", text.replace(str(limit), str(limit - 1))),
            tmp_path / "ok.o",
            toolchain,
            defines=defines(profile),
        )


UNDEFINED_CAP = {
    ".c": '#include <altlink/alternative.h>\n'
          'void f(void) { asm volatile(ALTERNATIVE("nop", "nop", ALT_CAP_HAS_FOO)); }\n',
    ".S": None,  # asm_file below
}


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
@pytest.mark.parametrize("suffix", [".c", ".S"])
@pytest.mark.parametrize("profile", PROFILES)
def test_an_undefined_capability_is_named(tmp_path, profile, suffix, toolchain):
    """A capability name the header does not define (a typo, or a table without it). In
    assembly, GNU as says it is not defined; clang (assembly and C), that it is out of range
    or not defined: both name it. In C, GNU as only says "non-constant expression" (the check
    by name would add lines that count against inlining)."""
    text = UNDEFINED_CAP[suffix] or asm_file('alternative_insn "nop", "nop", ALT_CAP_HAS_FOO\n')
    src = write(tmp_path / f"src{suffix}", text)
    with pytest.raises(BuildError) as err:
        compile(src, tmp_path / "src.o", toolchain, defines=defines(profile))
    if toolchain == "gnu" and suffix == ".c":
        assert 'Error: non-constant expression in ".if" statement' in err.value.stderr
    elif toolchain == "gnu":
        assert ("Error: altlink: capability ALT_CAP_HAS_FOO is not defined (capabilities are "
                "ALT_CAP_<NAME>, from the header generated from your table)") in err.value.stderr
        assert "non-constant expression" not in err.value.stderr
    else:
        assert "error: altlink: capability ALT_CAP_HAS_FOO is out of range (0 <= cap < " \
            in err.value.stderr
        assert "), or not defined" in err.value.stderr
    # the same with the capability defined assembles
    compile(write(tmp_path / f"ok{suffix}", text.replace("ALT_CAP_HAS_FOO", "ALT_CAP_HAS_A")),
            tmp_path / "ok.o", toolchain, defines=[*defines(profile), "ALT_CAP_HAS_A=1"])


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_disabled_alternative_emits_nothing(tmp_path, toolchain):
    """As in Linux, ALTERNATIVE(..., cap, 0) and alternative_insn ..., 0 leave out the whole block."""
    c = write(
        tmp_path / "src.c",
        (
            "#include <altlink/alternative.h>\nvoid f(void)\n{\n"
            '\tasm volatile(ALTERNATIVE("movz x0, #1", "movz x0, #2", 1, 0) ::: "x0");\n'
            '\tasm volatile(ALTERNATIVE("movz x0, #3", "movz x0, #4", 1, 1) ::: "x0");\n}\n'
        ),
    )
    s = write(
        tmp_path / "src.S",
        asm_file(
            'alternative_insn "movz x0, #1", "movz x0, #2", 1, 0\n'
            'alternative_insn "movz x0, #3", "movz x0, #4", 1, 1\n'
        ),
    )
    for src in (c, s):
        obj = Obj(compile(src, tmp_path / "src.o", toolchain, defines=defines("linux-v4.17")))
        assert obj.section(".altinstructions").data_size == 12
        assert obj.section(".altinstr_replacement").data_size == 4
        words = obj.section(".text").data()
        assert struct.pack("<I", 0xD2800020) not in words  # movz x0, #1: left out too


# ---- the sample firmware ---------------------------------------------------------------

UNPATCHED = [
    "site mul: original",
    "site crc: original",
    "site call: original",
    "site skip: original",
    "site adrp: original",
    "callback site: original",
]
SAMPLE_SITES = 6


def caps_header(table: Path) -> str:
    """caps.h from caps.txt, numbered as Linux's gen-cpucaps.awk does (written here by hand)."""
    names = [ln.split("#", 1)[0].strip() for ln in table.read_text().splitlines()]
    names = [n for n in names if n]
    lines = [f"#define ALT_CAP_{n} {i}" for i, n in enumerate(names)]
    return "\n".join([*lines, f"#define ALT_NCAPS {len(names)}", ""])


def build_sample(tmp_path: Path, toolchain: str, profile: str, ldflags=()) -> Path:
    gen = tmp_path / "gen"
    write(gen / "caps.h", caps_header(SAMPLE / "caps.txt"))
    runtime = ROOT / "altlink" / "runtime"
    objs = [
        compile(
            src,
            tmp_path / f"{src.stem}.o",
            toolchain,
            flags=[f"-I{gen}", f"-I{runtime}", *WARNINGS],
            defines=defines(profile, ncaps=None),
        )
        for src in (SAMPLE / "start.S", SAMPLE / "sites.S", SAMPLE / "main.c",
                    runtime / "alt_runtime.c")
    ]
    return link(
        objs,
        tmp_path / "fw.elf",
        toolchain,
        script=SAMPLE / "fw.ld",
        flags=["-L", LDSCRIPTS, *ldflags],
    )


def test_sample_caps_table_has_the_documented_capabilities():
    header = caps_header(SAMPLE / "caps.txt")
    assert "#define ALT_CAP_HAS_FAST_MUL 0" in header
    assert "#define ALT_NCAPS 3" in header


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
@pytest.mark.parametrize("profile", PROFILES)
def test_sample_runs_unpatched(tmp_path, profile, toolchain):
    image = build_sample(tmp_path, toolchain, profile)

    proc = qemu(image, "--no-patch")  # the sample patches itself unless told not to
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == UNPATCHED

    proc = qemu(image, "HAS_CRC", "NO_SUCH_CAP")  # argv reaches fw_main
    assert proc.returncode == 2
    assert proc.stdout == "fw: unknown capability NO_SUCH_CAP\n"

    elf = read_elf(image)
    syms = {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()}
    start, end = syms["__alt_instructions"], syms["__alt_instructions_end"]
    assert start % 4 == 0
    assert end - start == 12 * SAMPLE_SITES
    table = elf.get_section_by_name(".altinstructions")
    assert (table["sh_addr"], table.data_size) == (start, end - start)
    assert syms["_start"] == 0x400000 == elf.header["e_entry"]

    repl = elf.get_section_by_name(".altinstr_replacement")
    if profile == "linux-v4.17":
        assert repl is not None and repl["sh_addr"] % 4 == 0 and repl.data_size > 0
        assert repl["sh_flags"] & SH_FLAGS.SHF_EXECINSTR
        segment = next(
            seg
            for seg in elf.iter_segments()
            if seg["p_type"] == "PT_LOAD"
            and seg["p_vaddr"] <= repl["sh_addr"] < seg["p_vaddr"] + seg["p_memsz"]
        )
        assert segment["p_flags"] & 1  # PF_X: the replacement code is in the executable segment
    else:
        assert repl is None


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_fragment_keeps_the_table_with_gc_sections(tmp_path, toolchain):
    image = build_sample(tmp_path, toolchain, "linux-v4.17", ldflags=["--gc-sections"])
    elf = read_elf(image)
    assert elf.get_section_by_name(".altinstructions").data_size == 12 * SAMPLE_SITES
    assert elf.get_section_by_name(".altinstr_replacement").data_size > 0
    assert qemu(image, "--no-patch").stdout.splitlines() == UNPATCHED


@pytest.mark.parametrize("toolchain", ["gnu", "llvm"])
def test_types_only_then_full_inclusion_keeps_the_macros(tmp_path, toolchain):
    """A types-only inclusion (as the C runtime's header does) must not hide the macros from a
    later full inclusion in the same file."""
    src = write(tmp_path / "both.c", "#define ALTLINK_TYPES_ONLY\n#include <altlink/alternative.h>\n"
                "#undef ALTLINK_TYPES_ONLY\n#define ALT_NCAPS 2\n#include <altlink/alternative.h>\n"
                "int f(void) { int x; asm volatile(ALTERNATIVE(\"mov %w0, #0\", \"mov %w0, #1\", 1)"
                " : \"=r\"(x)); return x + (int)sizeof(struct alt_instr); }\n")
    compile(src, tmp_path / "both.o", toolchain)
