"""Source lines from DWARF line tables (pyelftools), for findings and manifests."""
from __future__ import annotations

import os
from bisect import bisect_right

from altlink.elf import ElfFile


class LineTable:
    """Address -> ``file:line`` for a linked image, read once, lazily."""

    def __init__(self, elf: ElfFile, base_dir: str | None = None) -> None:
        self.elf = elf
        self.base_dir = base_dir
        self._addrs: list[int] | None = None
        self._rows: list[str] = []

    def _load(self) -> None:
        self._addrs = []
        if ".debug_line" not in self.elf.sections_by_name:
            return
        try:
            import io

            from elftools.elf.elffile import ELFFile
            ef = ELFFile(io.BytesIO(bytes(self.elf.data)))
            dwarf = ef.get_dwarf_info()
            pairs = []
            for cu in dwarf.iter_CUs():
                lp = dwarf.line_program_for_CU(cu)
                if lp is None:
                    continue
                files = lp["file_entry"]
                dirs = lp["include_directory"]
                ver = lp.header.version
                for ent in lp.get_entries():
                    st = ent.state
                    if st is None or st.end_sequence:
                        continue
                    idx = st.file if ver >= 5 else st.file - 1
                    if not 0 <= idx < len(files):
                        continue
                    fe = files[idx]
                    name = fe.name.decode("utf-8", "replace")
                    di = fe.dir_index if ver >= 5 else fe.dir_index - 1
                    if not os.path.isabs(name) and 0 <= di < len(dirs):
                        name = os.path.join(dirs[di].decode("utf-8", "replace"), name)
                    pairs.append((st.address, f"{self._rel(name)}:{st.line}"))
        except Exception:  # DWARF is an extra: a reader problem must not fail the link
            return
        pairs.sort(key=lambda p: p[0])
        self._addrs = [a for a, _ in pairs]
        self._rows = [r for _, r in pairs]

    def _rel(self, name: str) -> str:
        if self.base_dir and os.path.isabs(name):
            rel = os.path.relpath(name, self.base_dir)
            return rel if not rel.startswith("../../..") else name
        return name

    def lookup(self, addr: int) -> str | None:
        if self._addrs is None:
            self._load()
        i = bisect_right(self._addrs, addr) - 1
        return self._rows[i] if i >= 0 else None
