"""The nearest ELF symbol below an address: every function and object symbol of a file, from
.symtab when the file has one, else .dynsym, so a stripped library still names its exported
functions and variables. Read once per file and kept sorted, so naming many words costs a
bisect each, not a gdb call."""

from bisect import bisect_right
from typing import List, NamedTuple, Optional, Tuple

from .elfheader import elf_header, section_header, symbol
from .elfsyms import MAX_TABLE, SHT_DYNSYM, SHT_SYMTAB, STT_FUNC, STT_OBJECT, Reader, _name_at

ET_EXEC = 2
MAX_SYMBOLS = 2_000_000  # a bound on one table, whatever the file says
FAR = 1 << 16  # past a symbol of unknown size (0), an address this far is not named by it


class SymbolTable(NamedTuple):
    """Symbols sorted by st_value; `source` is ".symtab" or ".dynsym"; `fixed` when the file is
    an ET_EXEC (its values are addresses, no load bias)."""

    values: List[int]
    entries: List[Tuple[int, int, str]]  # (value, size, name)
    source: str
    fixed: bool


def symbol_table(read: Reader) -> Optional[SymbolTable]:
    h = elf_header(read(0, 64))
    if h is None or h.shoff == 0 or h.shentsize < h.shdr_size or not 0 < h.shnum < 4096:
        return None
    table = read(h.shoff, h.shentsize * h.shnum)
    if len(table) < h.shentsize * h.shnum:
        return None
    sections = [section_header(table, i * h.shentsize, h.word) for i in range(h.shnum)]
    for kind, name in ((SHT_SYMTAB, ".symtab"), (SHT_DYNSYM, ".dynsym")):
        entries: List[Tuple[int, int, str]] = []
        for sh_type, off, size, link, entsize in sections:
            if sh_type != kind or not 0 <= link < len(sections) or size > MAX_TABLE:
                continue
            strtab = sections[link]
            if strtab[2] > MAX_TABLE:
                continue
            entsize = max(entsize, h.sym_size)
            syms, strs = read(off, size), read(strtab[1], strtab[2])
            for pos in range(0, min(len(syms) - entsize + 1, MAX_SYMBOLS * entsize), entsize):
                st_name, st_info, st_shndx, st_value, st_size = symbol(syms, pos, h.word)
                if st_shndx == 0 or st_value == 0 or st_info & 0xF not in (STT_OBJECT, STT_FUNC):
                    continue
                if st_name < len(strs):
                    entries.append((st_value, st_size, _name_at(strs, st_name)))
        if entries:
            entries.sort()
            return SymbolTable([e[0] for e in entries], entries, name, h.e_type == ET_EXEC)
    return None


def nearest(table: SymbolTable, vaddr: int) -> Optional[Tuple[str, int]]:
    """(name, offset) of the symbol that holds `vaddr` (a file's virtual address): the highest
    one below it whose size reaches it (among the 64 below, for nested symbols), else the one
    just below when it has no size and is not far; else None."""
    i = bisect_right(table.values, vaddr) - 1
    for j in range(i, max(-1, i - 64), -1):
        value, size, name = table.entries[j]
        if value + size > vaddr:
            return name, vaddr - value
    if i >= 0:
        value, size, name = table.entries[i]
        if size == 0 and vaddr - value < FAR:
            return name, vaddr - value
    return None
