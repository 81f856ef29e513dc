"""Running an image's own alternative callback offline, in an emulator (unicorn).

The image's loadable segments are mapped (dynamic relocations, RELA and RELR, applied first),
the callback is called with the arguments of docs/reference.md, section 2
``cb(struct alt_instr *alt, u32 *origptr, u32 *updptr, int nr_inst)`` and a stack, and runs
until it returns, within an instruction limit. Any fault is a one-line error.
"""
from __future__ import annotations

import struct

from altlink.elf import PT_LOAD, SHT_RELA, SHT_RELR, ElfFile
from altlink.errors import AltlinkError

PAGE = 0x1000
STACK_SIZE = 0x40000
R_AARCH64_RELATIVE = 1027
MAX_MAPPED = 1 << 31  # an image mapping more than 2 GiB is not a firmware image
TCG_BUFFER = 32 << 20  # unicorn's translated-code buffer


def _down(x: int) -> int:
    return x & ~(PAGE - 1)


def _up(x: int) -> int:
    return (x + PAGE - 1) & ~(PAGE - 1)


def require() -> None:
    """Stop with one line, before anything is patched, when the emulator is not installed
    (an optional part of altlink: the ``emulate`` extra)."""
    try:
        import unicorn  # noqa: F401
    except ImportError:
        raise AltlinkError("altlink: --emulate needs the unicorn emulator, an optional part: "
                           "pip install 'altlink[emulate]'") from None


class Emulator:
    def __init__(self, elf: ElfFile, data: bytearray, max_insns: int = 1_000_000) -> None:
        require()
        import unicorn
        from unicorn import arm64_const
        self.uc_mod = unicorn
        self.regs = arm64_const
        self.elf = elf
        if max_insns < 1:  # unicorn reads a count of 0 as "no limit"
            raise AltlinkError(f"the instruction limit must be at least 1, not {max_insns}")
        self.max_insns = max_insns
        self.uc = unicorn.Uc(unicorn.UC_ARCH_ARM64, unicorn.UC_MODE_ARM)
        # unicorn reserves a 1 GiB code buffer by default, and exits the process when it
        # cannot (e.g. under ulimit -v); a callback needs a few pages of translated code.
        self.uc.ctl_set_tcg_buffer_size(TCG_BUFFER)
        self.ranges: list[tuple[int, int]] = []
        try:
            self._map_segments(data)
        except unicorn.UcError as e:  # overlapping, wrapping or oversized segments
            raise AltlinkError(f"{elf.path}: cannot load the segments to emulate: {e}") from None
        self._apply_dynamic_relocations()
        top = max((e for _, e in self.ranges), default=0x100000)
        base = _up(top) + 0x100000
        if base + STACK_SIZE + 2 * PAGE >= 1 << 64:
            base = 0x10000
        self.stack_base = base
        self.scratch = base + STACK_SIZE
        self.ret_addr = self.scratch + PAGE
        self._map(self.stack_base, STACK_SIZE + 2 * PAGE)
        self.uc.mem_write(self.ret_addr, struct.pack("<I", 0xD4200000))  # brk #0: never run

    def _map(self, start: int, size: int) -> None:
        start, end = _down(start), _up(start + size)
        # Skip pages already mapped by an earlier, overlapping segment.
        for a, b in self.ranges:
            if a <= start < b:
                start = b
            if a < end <= b:
                end = a
        if end <= start:
            return
        self.uc.mem_map(start, end - start)
        self.ranges.append((start, end))

    def _map_segments(self, data: bytearray) -> None:
        segs = [s for s in self.elf.segments if s.type == PT_LOAD and s.memsz]
        total = sum(_up(s.memsz) for s in segs)
        if total > MAX_MAPPED:
            raise AltlinkError(f"{self.elf.path}: loadable segments of {total:#x} bytes are too "
                               "large to emulate")
        if not segs:
            raise AltlinkError(f"{self.elf.path}: no loadable segments to emulate")
        for s in segs:
            self._map(s.vaddr, s.memsz)
        for s in segs:
            if s.filesz:
                if s.offset + s.filesz > len(data):
                    raise AltlinkError(f"{self.elf.path}: segment at {s.vaddr:#x} runs past the "
                                       "end of the file")
                self.uc.mem_write(s.vaddr, bytes(data[s.offset:s.offset + s.filesz]))

    def _apply_dynamic_relocations(self) -> None:
        for sec in self.elf.sections:
            if not sec.alloc:
                continue
            if sec.type == SHT_RELA:
                for r in self.elf.relocations(sec):
                    if r.type == R_AARCH64_RELATIVE:
                        self._write64(r.offset, r.addend)
            elif sec.type == SHT_RELR:
                self._apply_relr(self.elf.section_data(sec))

    def _apply_relr(self, data: bytes) -> None:
        where = 0
        for (entry,) in struct.iter_unpack("<Q", data[:len(data) // 8 * 8]):
            if entry & 1 == 0:
                where = entry
                self._add64(where)
                where += 8
            else:
                bits = entry >> 1
                for i in range(63):
                    if bits & (1 << i):
                        self._add64(where + 8 * i)
                where += 63 * 8

    def _write64(self, addr: int, value: int) -> None:
        try:
            self.uc.mem_write(addr, struct.pack("<Q", value & (1 << 64) - 1))
        except self.uc_mod.UcError:
            raise AltlinkError(f"{self.elf.path}: dynamic relocation at {addr:#x} is outside "
                               "the loaded segments") from None

    def _add64(self, addr: int) -> None:
        # RELR relocations add the load bias (0 here) to the stored address: nothing changes
        # for an image emulated at its link address, but the place must be mapped.
        try:
            self.uc.mem_read(addr, 8)
        except self.uc_mod.UcError:
            raise AltlinkError(f"{self.elf.path}: RELR relocation at {addr:#x} is outside the "
                               "loaded segments") from None

    def write(self, addr: int, code: bytes) -> None:
        """Keep the emulated memory in step with what the patcher wrote."""
        try:
            self.uc.mem_write(addr, code)
        except self.uc_mod.UcError:
            pass

    def call(self, cb: int, entry: int, site: int, orig: list[int]) -> list[int]:
        nr = len(orig)
        if nr * 4 > PAGE:
            raise AltlinkError(f"site of {nr} instructions is too long to emulate")
        r = self.regs
        uc = self.uc
        uc.mem_write(self.scratch, struct.pack(f"<{nr}I", *orig))
        for reg, val in ((r.UC_ARM64_REG_X0, entry), (r.UC_ARM64_REG_X1, site),
                         (r.UC_ARM64_REG_X2, self.scratch), (r.UC_ARM64_REG_X3, nr),
                         (r.UC_ARM64_REG_X30, self.ret_addr),
                         (r.UC_ARM64_REG_SP, self.stack_base + STACK_SIZE - 16)):
            uc.reg_write(reg, val)
        try:
            uc.emu_start(cb, self.ret_addr, count=self.max_insns)
        except self.uc_mod.UcError as e:
            pc = uc.reg_read(r.UC_ARM64_REG_PC)
            raise AltlinkError(f"fault in the callback at pc {pc:#x}: {e}") from None
        pc = uc.reg_read(r.UC_ARM64_REG_PC)
        if pc != self.ret_addr:
            raise AltlinkError(f"the callback did not return within {self.max_insns} "
                               f"instructions (stopped at pc {pc:#x})")
        return list(struct.unpack(f"<{nr}I", bytes(uc.mem_read(self.scratch, 4 * nr))))
