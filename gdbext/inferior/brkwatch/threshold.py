"""Where malloc's mp_.mmap_threshold lives in the process, so that each event can record it:
from libc's debug info, else libc's symbol table laid out by glibc's version, else mp_ found
by its shape once the main heap exists (tried now and then, not at every event)."""

from typing import Callable, Optional

import gdb

from ...model import brklog as M
from ..errors import UserError
from .running import proc_maps, read_u64, uncached_memory
from .libccode import LibcInfo

THRESHOLD_RETRY = 32  # events between attempts to find mp_ without symbols
MAX_TRIES = 40  # attempts to find mp_ without symbols, per program


class MmapThreshold:
    """The address of mp_.mmap_threshold in one program, and how it was found."""

    def __init__(self):
        self.address: Optional[int] = None
        self.how = ""
        self._tries = 0
        self._wait = 0

    def find_with_symbols(self, libc: LibcInfo) -> None:
        self.address, self.how = None, ""
        try:
            syms = (
                gdb.lookup_static_symbols("mp_")
                if hasattr(gdb, "lookup_static_symbols")
                else [s for s in (gdb.lookup_static_symbol("mp_"),) if s]
            )
        except (gdb.error, RuntimeError):
            syms = []
        for s in syms:
            try:
                addr = int(s.value().address)
                t = s.type.strip_typedefs()
                off = next((f.bitpos // 8 for f in t.fields() if f.name == "mmap_threshold"), None)
            except (gdb.error, RuntimeError, AttributeError):
                continue
            if off is not None and any(lo <= addr < hi for lo, hi in libc.ranges):
                self.address, self.how = addr + off, "mp_ from libc's debug info"
                return
        if "mp_" in libc.syms:  # a symbol table without debug types: offsets from glibc's version
            try:
                from ...model.ptmalloc.layout import Layout
                from ..libc import glibc_version
                from ..process import Target

                target = Target()
                version = glibc_version(target)  # unknown in a static program without the banner;
                # mmap_threshold has been malloc_par's third word in every glibc with a tcache
                layout = Layout.for_version(version, target.pointer_size)
                self.address = libc.syms["mp_"][0] + layout.malloc_par.offset("mmap_threshold")
                self.how = f"mp_ from the symbol table of {libc.path}, laid out as " + (
                    f"glibc {version[0]}.{version[1]}" if version else "every glibc since 2.26"
                )
            except (ImportError, KeyError, UserError, gdb.error):
                pass

    def _find_without_symbols(self, libc: Optional[LibcInfo], log: M.BrkLog, cur_brk: Optional[int]) -> None:
        """mp_ found by its shape (the ptmalloc model) once the main heap exists."""
        if libc is None or log.start_brk is None or self._tries >= MAX_TRIES:
            return
        if cur_brk is None or cur_brk <= log.start_brk:
            return
        self._tries += 1
        try:
            from ...model.ptmalloc.layout import Layout
            from ...model.ptmalloc.locate import find_mp
            from ..libc import glibc_version
            from ..process import Target
        except ImportError:
            self._tries = 99
            return
        target = Target()
        layout = Layout.for_version(glibc_version(target), target.pointer_size)
        cands = [
            m
            for m in proc_maps(target.pid)
            if m.writable
            and (m.path == libc.path or (m.anonymous and any(m.start == hi for _, hi in libc.ranges)))
        ]
        found = None
        # mp_.sbrk_base: the kernel's start of the heap, or the break malloc found when it first
        # grew the heap (a static program's start-up may have moved the break before that)
        starts = [log.start_brk] + [
            e.old_brk for e in list(log.events)[:8] if e.kind == "brk" and e.old_brk and e.alloc
        ]
        for start in dict.fromkeys(starts):
            found = find_mp(uncached_memory(), layout, cands, start)
            if found is not None:
                break
        if found is not None:
            self.address = found.address + layout.malloc_par.offset("mmap_threshold")
            self.how = "mp_ found without symbols (" + found.how + ")"

    def read(
        self,
        libc: Optional[LibcInfo],
        log: M.BrkLog,
        cur_brk: Optional[int],
        on_error: Callable[[Exception], None],
    ) -> Optional[int]:
        """mp_.mmap_threshold now, or None while it is not found."""
        if self.address is None:
            self._wait -= 1
            if self._wait <= 0:
                self._wait = 1 if self._tries < 8 else THRESHOLD_RETRY
                try:
                    self._find_without_symbols(libc, log, cur_brk)
                except Exception as e:
                    on_error(e)
            if self.address is None:
                return None
        return read_u64(self.address)
