"""libc's own symbols at their run-time addresses, read from libc's file on this machine.

gdb's look-up of a name that two loaded objects define may answer with either copy: ld.so and
libc both define `__curbrk`, and the break that malloc moves is libc's.  libc's symbol table
(.symtab, else .dynsym) plus libc's load bias names libc's copy, and nothing else.

The file must be the one the process loaded: for a local process the inode in its maps says so;
otherwise (a core file, a gdbserver target whose paths may name files of another machine) the
object's first page in memory, when it can be read, must equal the file's first page (ELF
header, program headers and build-id note).  The load bias comes from the program headers in
memory, or the file's own when memory lacks them: the offset-0 mapping starts at the page of
the first PT_LOAD segment, so for a shared library (first p_vaddr 0) it is that mapping's start.
"""

import os
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from .elf import parse_program_headers
from .elfsyms import file_reader, symbols
from .libcversion import looks_like_libc
from .regions import Mapping

ReadMemory = Callable[[int, int], Optional[bytes]]  # (address, size) -> bytes, None if unreadable
HEAD = 0x1000
_TABLES: Dict[tuple, Dict[str, Tuple[int, int]]] = {}  # (file identity, names) -> raw symbols


@dataclass
class ObjectSymbols:
    path: str
    static: bool  # a static program: libc is the executable itself
    bias: int
    ranges: List[Tuple[int, int]]  # the object's mappings
    syms: Dict[str, Tuple[int, int]]  # name -> (run-time address, size); absent names left out
    eh_frame_hdr: Optional[Tuple[int, int]] = None  # (run-time address, size), see ehframe.py

    def address(self, name: str) -> Optional[int]:
        return self.syms[name][0] if name in self.syms else None


def is_loader(path: str) -> bool:
    return bool(path) and os.path.basename(path).startswith("ld-") and ".so" in path


def libc_mappings(maps: List[Mapping]) -> Tuple[List[Mapping], bool, str]:
    """(libc's mappings, whether libc is the static executable, why none)."""
    libc = [m for m in maps if looks_like_libc(m.path)]
    if libc:
        return libc, False, ""
    if any(is_loader(m.path) for m in maps):
        return [], False, "libc is not loaded yet"
    exe = next((m.path for m in maps if m.path and not m.path.startswith("[")), None)
    libc = [m for m in maps if exe and m.path == exe]
    return libc, True, "" if libc else "no libc in the process"


def libc_symbols(
    maps: List[Mapping],
    names: Iterable[str],
    read_memory: Optional[ReadMemory],
    local: bool,
    source: Optional[str] = None,
) -> Tuple[Optional[ObjectSymbols], str]:
    """libc's symbols `names` (those it defines), or (None, why) when libc or its file cannot
    be found, read, or shown to be the one the process loaded.  `local`: the maps are this
    machine's (their inodes can be checked).  `source`: prefer the statics of that libc source
    file (see elfsyms.symbols)."""
    objmaps, static, why = libc_mappings(maps)
    if not objmaps:
        return None, why
    return object_symbols(objmaps, names, read_memory, local, static, source)


def object_symbols(
    objmaps: List[Mapping],
    names: Iterable[str],
    read_memory: Optional[ReadMemory],
    local: bool,
    static: bool = False,
    source: Optional[str] = None,
) -> Tuple[Optional[ObjectSymbols], str]:
    path = objmaps[0].path
    first = min((m for m in objmaps if m.offset == 0), key=lambda m: m.start, default=None) or min(
        objmaps, key=lambda m: m.start
    )
    mem = read_memory(first.start, min(first.size, HEAD)) if read_memory else None
    read = file_reader(path)
    if read is None:
        return None, f"cannot open {path} to read its symbols"
    try:
        try:
            st = os.stat(path)
        except OSError:
            return None, f"cannot stat {path}"
        if local and first.inode and st.st_ino != first.inode:
            return None, f"{path} on disk is not the file the process loaded"
        head = read(0, HEAD)
        if mem:
            n = min(len(mem), len(head))
            if n < 64 or mem[:n] != head[:n]:
                return None, f"{path} on disk is not the file the process loaded"
        obj = parse_program_headers(mem or head, first.start, path)
        if obj is None:
            return None, f"{path} has no ELF header"
        wanted = tuple(sorted(set(names)))
        key = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, wanted, source)
        raw = _TABLES.get(key)
        if raw is None:
            raw = symbols(read, wanted, source)
            if len(_TABLES) > 16:
                _TABLES.clear()
            _TABLES[key] = raw
    finally:
        read.close()  # type: ignore[attr-defined]
    syms = {name: (obj.bias + value, size) for name, (value, size) in raw.items()}
    ranges = [(m.start, m.end) for m in objmaps]
    return ObjectSymbols(path, static, obj.bias, ranges, syms, obj.eh_frame_hdr), ""
