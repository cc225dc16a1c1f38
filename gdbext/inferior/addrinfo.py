"""What addrinfo and annotate need from gdb: the ELF symbol table of the object that maps an
address (read from its file once per stop), and the frame of a thread's stack that holds an
address (gdb's unwinder: the only one that knows each frame's CFA)."""

import os
import re
from typing import List, Optional, Tuple

import gdb

from ..model.elfnearest import SymbolTable, nearest, symbol_table
from ..model.elfsyms import file_reader
from ..model.regions import Region
from .process import Target, cached
from .threads import selection_kept

MAX_FRAMES = 4096  # a bound on the walk of one thread's frames


def _table(path: str) -> Optional[SymbolTable]:
    read = file_reader(path)
    if read is None:
        return None
    try:
        return symbol_table(read)
    except Exception:  # a truncated or odd file: no names rather than an error
        return None
    finally:
        read.close()  # type: ignore[attr-defined]


def symbol_at(target: Target, regions: List[Region], address: int) -> Optional[Tuple[str, str, int, str]]:
    """(object's file name, symbol, offset, ".symtab"/".dynsym") for an address in a file-backed
    mapping, or None. The load bias is the object's lowest mapping less its file offset."""
    region = next((r for r in regions if r.contains(address)), None)
    if region is None or not region.path.startswith("/"):
        return None
    path = region.path
    if not os.path.isfile(path):
        return None
    table = cached(("elf_symbols", path), lambda: _table(path))
    if table is None:
        return None
    if table.fixed:
        bias = 0
    else:
        lowest = min((r.mapping for r in regions if r.path == path), key=lambda m: m.start)
        bias = lowest.start - lowest.offset
    got = nearest(table, address - bias)
    if got is None:
        return None
    return os.path.basename(path), got[0], got[1], table.source


def frame_at(thread_num: int, address: int, stack_high: int) -> Optional[Tuple[int, str, int]]:
    """(frame level, function, offset from the frame's CFA) of the frame of gdb thread
    `thread_num` whose part of the stack holds `address`: from its $sp up to its CFA, which is
    its caller's $sp (the outermost frame's goes up to the stack's end)."""
    for level, name, sp, cfa in cached(("frames", thread_num), lambda: _frames(thread_num)):
        if sp <= address < (cfa if cfa is not None else stack_high):
            return level, name, address - (cfa if cfa is not None else stack_high)
    return None


def _outermost_cfa(frame) -> Optional[int]:
    """The CFA of a frame with no caller gdb shows (main, past which gdb does not unwind by
    default): gdb's own 'frame at' of `info frame`, its frame id's stack address. One call,
    for one frame per thread."""
    try:
        frame.select()
        text = gdb.execute("info frame", to_string=True)
    except gdb.error:
        return None
    m = re.search(r"frame at (0x[0-9a-f]+)", text)
    return int(m.group(1), 16) if m else None


def _frames(thread_num: int) -> List[Tuple[int, str, int, Optional[int]]]:
    """(level, function, $sp, CFA or None for the outermost) of each frame of a thread, at
    most MAX_FRAMES; the selected thread and frame are put back."""
    thread = next((t for t in gdb.selected_inferior().threads() if t.num == thread_num), None)
    if thread is None:
        return []
    out: List[Tuple[int, str, int, Optional[int]]] = []
    with selection_kept():
        try:
            thread.switch()
            frame = gdb.newest_frame()
            sp = int(frame.read_register("sp"))
            while frame is not None and len(out) < MAX_FRAMES:
                older = frame.older()
                cfa = int(older.read_register("sp")) if older is not None else _outermost_cfa(frame)
                out.append((len(out), frame.name() or "??", sp, cfa))
                if older is None or cfa is None:
                    break
                frame, sp = older, cfa
        except (gdb.error, RuntimeError):
            pass
    return out
