"""The symbol table read a column at a time (``elf._symbols_by_column``, at C speed) gives the
same symbols as the reading one symbol at a time, on the committed kernel modules, an image
of the toolchain, and Debian's vmlinux when it has been fetched (48,000 of its 155,000 names
are tails of longer names, as the linker shares them).

The symbols of one value found in the table's bytes (``ElfFile.symbols_at_value`` before the
table is decoded) are those of the decoded table (``symbols_at_value_py``). The index that
names addresses made from the table's columns with numpy
(``symbols.column_index``, no symbol decoded) is the index made from the decoded symbols
(``symbols.address_index``): the same values, the same best symbol for each (aliases, ties
broken by name), the same answers between them; on the same files and the kernel builds."""
from __future__ import annotations

import shutil

import pytest
from test_kernel import SLICE_MODULES, full_kernel
from toolchain import compile, link, write

from altlink.elf import read_elf


def same(path) -> int:
    elf = read_elf(str(path))
    ref = elf._read_symbols(elf.symtab, columns=False)
    got = elf._read_symbols(elf.symtab)
    assert got == ref
    assert all(type(s) is type(r) for s, r in zip(got, ref))
    return len(got)


def test_kernel_modules():
    assert sum(same(m) for m in SLICE_MODULES) > 1000


def same_index(path) -> int:
    """``column_index`` against ``address_index``; returns the number of values indexed."""
    from altlink import symbols

    got = symbols.column_index(read_elf(str(path)))
    ref = symbols.address_index(read_elf(str(path)))
    assert got is not None
    assert got.keys == ref.keys
    assert got.syms == ref.syms
    step = max(1, len(ref.keys) // 3000)
    addrs = [a for v in [*ref.keys[::step], 0, 1 << 63] for a in (v - 1, v, v + 2)]
    for addr in addrs:
        assert got.lookup(addr) == ref.lookup(addr), hex(addr)
    # A few addresses named without the index (``column_lookup``: the nearest values' symbols
    # alone, ranked): what the index gives; an address no 64-bit one: left to the index.
    addrs = [a for a in addrs if a >= 0]
    assert symbols.column_lookup(read_elf(str(path)), addrs) == list(map(ref.lookup, addrs))
    assert symbols.column_lookup(read_elf(str(path)), [-1]) is None
    # The symbols of one value, found in the table's bytes while it is not decoded
    fresh, decoded = read_elf(str(path)), read_elf(str(path))
    for v in [*ref.keys[::step * 4], 0, 1 << 63]:
        assert fresh.symbols_at_value(v) == decoded.symbols_at_value_py(v), hex(v)
    assert fresh._symbols is None and decoded._symbols is not None
    return len(ref.keys)


def test_index_of_kernel_modules():
    assert sum(same_index(m) for m in SLICE_MODULES) > 1000


@pytest.mark.kernel_build
@pytest.mark.timeout(3600)
def test_index_of_the_kernel_builds(kernel_build):
    assert same_index(kernel_build.out / "vmlinux") > 10_000


def test_index_of_debians_vmlinux():
    kdir = full_kernel()
    if kdir is None:
        pytest.skip("Debian's kernel is not fetched (tools/fetch_kernel.py)")
    assert same_index(kdir / "vmlinux") > 100_000
    # A large image's namer indexes it from the columns once numpy is loaded, and decodes
    # none of its symbols for that.
    from altlink import branches, symbols

    branches.preload(1 << 30)
    elf = read_elf(str(kdir / "vmlinux"))
    names = symbols.Symbolizer(elf)
    assert names.function_at(next(iter(names._addr_index.keys))) is not None
    assert isinstance(names._addr_index, symbols._ColumnIndex) and elf._symbols is None


@pytest.mark.skipif(not shutil.which("aarch64-linux-gnu-ld"), reason="no AArch64 toolchain")
def test_an_image_with_a_name_that_is_not_ascii(tmp_path):
    # A string table that is not all ASCII is split byte by byte (offsets are not characters).
    src = write(tmp_path / "a.S", "".join(
        f"\t.text\n\t.globl {n}\n\t.type {n}, %function\n{n}:\tret\n\t.size {n}, 4\n"
        for n in ("__pi_memcpy", "memcpy", "_start", "x\u00e9t\u00e9")))
    image = link([compile(src, tmp_path / "a.o")], tmp_path / "a.elf")
    assert same(image) >= 4
    names = {s.name for s in read_elf(str(image)).symbols}
    assert {"__pi_memcpy", "memcpy", "x\u00e9t\u00e9"} <= names
    from altlink import symbols  # its lengths in bytes are not in characters: not read so

    assert symbols.column_index(read_elf(str(image))) is None


def test_debians_vmlinux():
    kdir = full_kernel()
    if kdir is None:
        pytest.skip("Debian's kernel is not fetched (tools/fetch_kernel.py)")
    assert same(kdir / "vmlinux") > 100_000


def same_functions(path) -> int:
    """Symbolizer.function_at gives the same symbol found among those of the address's value
    (its first few lookups) as from the index of every address, at every symbol's value and
    beside it."""
    from altlink.symbols import Symbolizer, SymtabColumns

    elf = read_elf(str(path))
    direct, indexed = Symbolizer(elf), Symbolizer(elf)
    indexed.index_addresses()
    # Its direct lookups from the table's values column (made before, as an image's checks
    # make it), on a copy whose symbols are never decoded.
    other = read_elf(str(path))
    assert SymtabColumns.columns(other) is not None
    by_column = Symbolizer(other)
    values = sorted({s.value for s in elf.symbols})
    step = max(1, len(values) // 2000)  # Debian's vmlinux: 2,000 of 120,000 values
    named = 0
    for v in values[::step] + [values[-1] + 4, 1 << 63]:
        for addr in (v, v + 2, v + 4):
            direct._found.clear()
            by_column._found.clear()
            got = direct.function_at(addr)
            assert "_addr_index" not in direct.__dict__
            assert got == indexed.function_at(addr), hex(addr)
            assert by_column.function_at(addr) == got, hex(addr)
            named += got is not None
    assert other._symbols is None and "_addr_index" not in by_column.__dict__
    return named


@pytest.mark.skipif(not shutil.which("aarch64-linux-gnu-ld"), reason="no AArch64 toolchain")
def test_function_at_without_the_index(tmp_path):
    # Aliases at one address (the plain name wins), a local and a weak one, a data symbol,
    # mapping symbols and local labels (never names).
    src = write(tmp_path / "f.S", """
	.text
	.globl _start, memcpy, __pi_memcpy
	.weak w
	.type memcpy, %function
	.type __pi_memcpy, %function
	.type _start, %function
_start:
__pi_memcpy:
memcpy:	ret
.Llabel:
loc:	nop
w:	b	loc
	.data
	.globl table
table:	.quad 0
""")
    image = link([compile(src, tmp_path / "f.o")], tmp_path / "f.elf")
    assert same_functions(image) >= 4
    assert same_index(image) >= 4  # _start and memcpy tie but for their names
    from altlink.symbols import Symbolizer

    elf = read_elf(str(image))
    at = next(s.value for s in elf.symbols if s.name == "memcpy")
    # Of three functions at one address: not the alias; of _start and memcpy, as long, the
    # first by name.
    assert Symbolizer(elf).function_at(at).name == "_start"


def test_function_at_without_the_index_on_debians_vmlinux():
    kdir = full_kernel()
    if kdir is None:
        pytest.skip("Debian's kernel is not fetched (tools/fetch_kernel.py)")
    assert same_functions(kdir / "vmlinux") > 1000


def same_functions_map(path) -> int:
    """``reach.FunctionMap`` made from the table's columns is the one made from the decoded
    symbols: the same functions at the same addresses (aliases chosen by the same rule), the
    same extents and names at and beside each. Returns the number of functions."""
    from altlink.reach import FunctionMap

    got = FunctionMap(read_elf(str(path)), columns=True)
    ref = FunctionMap(read_elf(str(path)), columns=False)
    assert got._syms is None and ref._syms is not None  # the columns were read
    assert got.starts == ref.starts
    assert got.syms == ref.syms
    step = max(1, len(ref.starts) // 3000)
    for v in [*ref.starts[::step], 0, 1 << 63]:
        for addr in (v - 4, v, v + 4):
            assert got.extent(addr) == ref.extent(addr), hex(addr)
            assert got.name_at(addr) == ref.name_at(addr), hex(addr)
    return len(ref.starts)


def same_by_name(path) -> int:
    """The cross-check's index of an image's symbols by name, from the columns and from the
    decoded symbols: every name's addresses in table order, the globals. Returns the number
    of names."""
    from altlink.crosscheck import _by_name_columns, _ImageSymbols

    got = _ImageSymbols(read_elf(str(path)), columns=True)
    ref = _ImageSymbols(read_elf(str(path)), columns=False)
    assert got.elf._symbols is None  # nothing decoded
    assert got.by_name == ref.by_name and list(got.by_name) == list(ref.by_name)
    assert got._globals == ref._globals
    names = [*list(ref.by_name)[::7], "", "no-such-symbol"]
    for name in names:
        assert got.addresses(name) == ref.addresses(name), name
    # The names the cross-check asks for read alone, and any other name asked after them:
    # the same answers (the rest read when first needed).
    wanted = set(names[::2])
    some = _ImageSymbols(read_elf(str(path)), columns=True, wanted=wanted)
    assert some._wanted == wanted and set(some._last) | set(some._globals) <= wanted
    for name in wanted:  # answered from the wanted names' index alone
        assert some.addresses(name) == ref.addresses(name), name
        assert some.globals.get(name) == ref._globals.get(name), name
    assert some._wanted == wanted
    # The index of the wanted names (found by their keys) is the whole index's part for them,
    # for a sample of the names, for all of them, and for none.
    elf = read_elf(str(path))
    whole = _by_name_columns(elf)
    for want in (wanted, set(ref.by_name) | set(ref._globals), {"no-such-symbol", "é"}):
        assert _by_name_columns(elf, want) == \
            tuple({k: v for k, v in part.items() if k in want} for part in whole)
    for name in names:
        for syms in (some, ref):
            assert (name in syms.globals) == (name in ref._globals), name
        assert some.globals.get(name) == ref._globals.get(name), name
        assert some.addresses(name) == ref.addresses(name), name
    assert some._wanted is None  # an unwanted name was asked for: all read now
    assert some.by_name == ref.by_name
    return len(ref.by_name)


def test_functions_and_names_of_kernel_modules():
    # Modules: functions of several sections at the same offsets (aliases by value).
    assert sum(same_functions_map(m) for m in SLICE_MODULES) > 500
    assert sum(same_by_name(m) for m in SLICE_MODULES) > 1000


@pytest.mark.kernel_build
@pytest.mark.timeout(3600)
def test_functions_and_names_of_the_kernel_builds(kernel_build):
    assert same_functions_map(kernel_build.out / "vmlinux") > 5_000
    assert same_by_name(kernel_build.out / "vmlinux") > 10_000


def test_functions_and_names_of_debians_vmlinux():
    kdir = full_kernel()
    if kdir is None:
        pytest.skip("Debian's kernel is not fetched (tools/fetch_kernel.py)")
    assert same_functions_map(kdir / "vmlinux") > 40_000
    assert same_by_name(kdir / "vmlinux") > 100_000


@pytest.mark.skipif(not shutil.which("aarch64-linux-gnu-ld"), reason="no AArch64 toolchain")
def test_functions_and_names_with_aliases(tmp_path):
    # At one address, in table order: a sized function, an unsized one with a shorter name
    # (it wins: a shorter name), a sized one with a longer name (it wins back: sized over
    # unsized), a local of the same name as a global elsewhere, a tail of a longer name.
    src = write(tmp_path / "a.S", """
	.text
	.globl _start, long_function_name, f, longer_function_name
	.type _start, %function
_start:
	bl f
	ret
	.size _start, 8
	.type long_function_name, %function
	.type f, %function
	.type longer_function_name, %function
long_function_name:
f:
longer_function_name:
	ret
	.size long_function_name, 4
	.size longer_function_name, 4
	.type helper, %function
helper:
	ret
	.size helper, 4
	.type function_name, %function
function_name:
	ret
""")
    other = write(tmp_path / "b.S", """
	.text
	.globl helper
	.type helper, %function
helper:
	nop
	ret
	.size helper, 8
""")
    image = link([compile(src, tmp_path / "a.o"), compile(other, tmp_path / "b.o")],
                 tmp_path / "a.elf")
    assert same_functions_map(image) >= 4
    assert same_by_name(image) >= 6
    from altlink.crosscheck import _ImageSymbols

    names = _ImageSymbols(read_elf(str(image)), columns=True)
    assert len(names.addresses("helper")) == 2 and "helper" in names.globals
