"""Who caused an event: the program's own frame that called into libc, libc's frames on the
way (malloc, sbrk, ...), the malloc call and the size it asked for when readable, and on
request a short backtrace.  Frames only: nothing is called in the inferior."""

import os
from typing import Dict, List, Optional, Tuple

import gdb

from ...model import brklog as M
from ...model.libcsyms import is_loader
from ...model.libcversion import looks_like_libc
from .libccode import LibcInfo
from .running import live_pid, proc_maps

MAX_LIBC_FRAMES = 64


def _in_libc(libc: Optional[LibcInfo], frame, pc: int) -> bool:
    """Whether the frame runs in libc or the dynamic loader (not the program's caller)."""
    if libc is None:
        so = gdb.solib_name(pc)
        return bool(so and (looks_like_libc(so) or is_loader(so)))
    if libc.static:
        try:
            return frame.find_sal().symtab is None
        except gdb.error:
            return True
    return any(lo <= pc < hi for lo, hi in libc.system)


def _in_libc_proper(libc: Optional[LibcInfo], pc: int) -> bool:
    """libc itself, not the dynamic loader (whose minimal malloc is not the program's)."""
    if libc is None or libc.static:
        so = gdb.solib_name(pc) if libc is None else None
        return libc is not None or bool(so and looks_like_libc(so))
    return any(lo <= pc < hi for lo, hi in libc.ranges)


def add_context(ev: M.BrkEvent, frame, libc: Optional[LibcInfo], bt: int) -> None:
    """Fills the event's via, caller, backtrace (bt frames) and alloc from the frames from
    `frame` (the newest) outwards."""
    via: list = []
    libc_frames: list = []
    alloc_frame, n = None, 0
    f = frame
    while f is not None and n < MAX_LIBC_FRAMES:
        pc = f.pc()
        if not _in_libc(libc, f, pc):
            break
        libc_frames.append(f)
        name = f.name()
        if name and (not via or via[-1] != name):
            via.append(name)
        if M.alloc_name(name) and _in_libc_proper(libc, pc):
            alloc_frame = f
        try:
            f = f.older()
        except gdb.error:
            f = None
        n += 1
    ev.via = via
    if f is not None and n < MAX_LIBC_FRAMES and f.pc() >= 0x10000:  # not past the outermost
        ev.caller = describe(f)
        if bt:
            ev.backtrace = _backtrace(f, bt)
    if alloc_frame is not None:
        ev.alloc = alloc_request(alloc_frame, libc_frames)


def _backtrace(frame, count: int) -> List[dict]:
    out: List[dict] = []
    f = frame
    while f is not None and len(out) < count:
        out.append(describe(f))
        try:
            f = f.older()
        except gdb.error:
            break
    return out


def describe(frame) -> dict:
    """The frame's function, file, line and pc; for a frame without a function name (a
    stripped object) the object's file name and the pc's offset from where it is loaded."""
    try:
        sal = frame.find_sal()
        symtab = sal.symtab
        name, pc = frame.name(), frame.pc()
        where = _object_offset(pc) if not name else None
        return {
            "function": name,
            "file": symtab.filename if symtab else None,
            "line": (sal.line or None) if symtab else None,
            "pc": pc,
            "object": where[0] if where else None,
            "object_offset": where[1] if where else None,
        }
    except gdb.error:
        return dict.fromkeys(("function", "file", "line", "pc", "object", "object_offset"))


_last_maps: Dict[int, list] = {}  # pid -> its /proc/PID/maps as last read, for the next pc


def _object_offset(pc: int) -> Optional[Tuple[str, int]]:
    """(basename of the file mapped at pc, pc - that file's load base: its lowest mapping), from
    /proc/PID/maps, read again only when pc is in no file mapping of the last read."""
    pid = live_pid()
    if pid is None:
        return None
    for fresh in (False, True):
        if fresh or pid not in _last_maps:
            _last_maps.clear()
            _last_maps[pid] = proc_maps(pid)
            fresh = True
        maps = _last_maps[pid]
        m = next((m for m in maps if m.start <= pc < m.end), None)
        if m is not None and m.path and not m.anonymous and not m.path.startswith("["):
            base = min(x.start for x in maps if x.path == m.path)
            return os.path.basename(m.path), pc - base
        if fresh:
            return None
    return None


_ALLOC_ARGS = {
    "malloc": ("bytes",),
    "realloc": ("bytes",),
    "memalign": ("bytes",),
    "aligned_alloc": ("bytes",),
    "valloc": ("bytes",),
    "pvalloc": ("bytes",),
    "posix_memalign": ("size",),
    "calloc": ("n", "elem_size"),
}

# Where the request is still readable when the entry point's own argument is optimized out.
_INNER_REQUEST = {
    "malloc": ("_int_malloc", "bytes"),
    "calloc": ("_int_malloc", "bytes"),
    "memalign": ("_int_memalign", "bytes"),
    "aligned_alloc": ("_int_memalign", "bytes"),
    "posix_memalign": ("_int_memalign", "bytes"),
    "valloc": ("_int_memalign", "bytes"),
    "pvalloc": ("_int_memalign", "bytes"),
}


def _read_ints(frame, names) -> Optional[List[int]]:
    try:
        vals = []
        for n in names:
            v = frame.read_var(n)
            if v.is_optimized_out:
                return None
            vals.append(int(v))
        return vals
    except (gdb.error, ValueError, RuntimeError):
        return None


def alloc_request(frame, libc_frames=()) -> dict:
    """{"function", "size"} of the malloc call in `frame` ("pointer" for free), read from its
    arguments or, when they are optimized out, from libc's inner frames."""
    name = M.alloc_name(frame.name())
    out: Dict[str, object] = {"function": name, "size": None}
    names = _ALLOC_ARGS.get(name) if name else None
    if names:
        vals = _read_ints(frame, names)
        if vals is None and name in _INNER_REQUEST:
            inner, var = _INNER_REQUEST[name]
            for f in libc_frames:
                if f.name() == inner:
                    vals = _read_ints(f, (var,))
                    if vals is not None:
                        break
        if vals is not None:
            size = 1
            for v in vals:
                size *= v
            out["size"] = size
    elif name == "free":
        vals = _read_ints(frame, ("mem",))
        if vals is not None:
            out["pointer"] = vals[0]
        else:  # the chunk the inner functions hold, 2 words below the user's pointer
            for f in libc_frames:
                if f.name() in ("munmap_chunk", "_int_free"):
                    p = _read_ints(f, ("p",))
                    if p is not None:
                        out["pointer"] = p[0] + 2 * 8
                        break
    return out
