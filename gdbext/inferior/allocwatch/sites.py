"""Which call site of the program an allocator call came from: the return address when it is
the program's, else the first frame outside libc and the dynamic loader (strdup's malloc, a
dlopen's).  A site is looked up once per return address (code does not move while the
process lives), so the hot path of a hook is a dictionary look-up."""

import os
from typing import Dict, List, Optional, Tuple

import gdb

from ...model.allocsites import Site
from ..brkwatch.callers import _object_offset
from ..brkwatch.libccode import LibcInfo
from ..brkwatch.running import proc_maps

MAX_FRAMES = 64  # libc frames walked to reach the program's
MAX_CACHED = 65536
GLIBC_LIBS = ("libpthread.so", "libpthread-2.", "librt.so", "librt-2.", "libdl.so", "libdl-2.")
DIRECT, WALKED, LIBC = 0, 1, 2


class SiteFinder:
    """Sites by return address, for one process's libc."""

    def __init__(self, libc: LibcInfo, pid: int):
        self.libc = libc
        glibc_libs = [(m.start, m.end) for m in proc_maps(pid) if _is_glibc_lib(m.path)]
        self._system = sorted(libc.system + glibc_libs)
        self._sites: Dict[int, Site] = {}

    def in_system(self, pc: int) -> bool:
        """Whether pc is in libc or the dynamic loader (not a caller the user wrote)."""
        return any(lo <= pc < hi for lo, hi in self._system)

    def site_at(self, pc: int) -> Site:
        """The site of a return address (the call before it names the function and line)."""
        s = self._sites.get(pc)
        if s is None:
            if len(self._sites) >= MAX_CACHED:
                self._sites.clear()
            s = self._sites[pc] = _describe(pc)
        return s

    def caller(self, ret: int) -> Tuple[Site, int]:
        """(the site, how it was found) of a call whose return address is `ret`, from the entry
        point's own frame (the newest): DIRECT (the program called), WALKED (through libc's
        frames to the program's) or LIBC (no frame of the program's: libc's own call)."""
        if not self.in_system(ret):
            return self.site_at(ret), DIRECT
        try:
            f = gdb.newest_frame().older()
            n = 0
            while f is not None and n < MAX_FRAMES:
                pc = f.pc()
                if not self.in_system(pc):
                    return self.site_at(pc), WALKED
                f = f.older()
                n += 1
        except gdb.error:
            pass
        return self.site_at(ret), LIBC

    def backtrace(self, count: int) -> Tuple[Site, ...]:
        """`count` frames from the first of the program's outwards."""
        out: List[Site] = []
        try:
            f = gdb.newest_frame().older()
            while f is not None and len(out) < count:
                pc = f.pc()
                if out or not self.in_system(pc):
                    out.append(self.site_at(pc))
                f = f.older()
        except gdb.error:
            pass
        return tuple(out)


def _is_glibc_lib(path: str) -> bool:
    """glibc's libraries besides libc: before 2.34 a thread starts and ends in libpthread's
    start_thread, which is no call site of the program's."""
    name = os.path.basename(path or "")
    return name.startswith(GLIBC_LIBS)


def _describe(ret: int) -> Site:
    """Function, file and line of the call that returns to `ret` (looked up at ret - 1, inside
    the call instruction, as gdb does for an outer frame); the object and offset without a name."""
    pc = ret - 1
    name: Optional[str] = None
    file: Optional[str] = None
    line: Optional[int] = None
    try:
        sal = gdb.find_pc_line(pc)
        if sal.symtab is not None:
            file, line = sal.symtab.filename, (sal.line or None)
        block = gdb.block_for_pc(pc)
        while block is not None and block.function is None:
            block = block.superblock
        if block is not None:
            name = block.function.print_name
    except (gdb.error, RuntimeError):
        pass
    if name is None:
        name = _minimal_symbol(pc)
    where = _object_offset(ret) if name is None else None
    return Site(name, file, line, ret, where[0] if where else None, where[1] if where else None)


def _minimal_symbol(pc: int) -> Optional[str]:
    """The ELF symbol holding pc (code without debug info), from `info symbol`."""
    try:
        text = gdb.execute(f"info symbol {pc:#x}", to_string=True)
    except gdb.error:
        return None
    if text.startswith("No symbol"):
        return None
    word = text.split(" in section ")[0].split(" + ")[0].strip()
    return word or None
