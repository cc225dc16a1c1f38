"""Who caused an event: the program's own frame that called into libc, libc's frames on the
way (malloc, sbrk, ...), the malloc call and the size it asked for when readable, and on
request a short backtrace.  Frames only: nothing is called in the inferior."""

import os
from typing import Dict, List, Optional, Tuple

import gdb

from ...model import brklog as M
from ...model.callsite import call_before, plt_slot
from ...model.libcsyms import is_loader
from ...model.libcversion import looks_like_libc
from .libccode import LibcInfo
from .running import is_x86_64, live_pid, proc_maps, read_memory, read_u64

MAX_LIBC_FRAMES = 64
MAX_CALL_SITES = 4096


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


def _allocator(libc: Optional[LibcInfo], name: Optional[str], pc: int) -> Optional[str]:
    """The allocator entry point ('malloc') whose call this frame runs, or None.  Known from
    libc's own code when libc was found (model/allocentries.py), else from gdb's name."""
    if libc is not None:
        return libc.allocators.entry_at(pc)
    return M.alloc_name(name) if _in_libc_proper(libc, pc) else None


def _called_entry(libc: Optional[LibcInfo], caller) -> Optional[str]:
    """The allocator entry point that the caller's frame called ('valloc'), from its call
    instruction (model/callsite.py): it names the call when a tail call left no frame of its
    own.  x86-64 only; None when the call is not a direct one or not an entry point's."""
    if libc is None or not is_x86_64():
        return None
    ret = caller.pc()
    if ret not in libc.call_sites:  # code does not change: one look per call site
        if len(libc.call_sites) >= MAX_CALL_SITES:
            libc.call_sites.clear()
        libc.call_sites[ret] = _call_target(libc, ret)
    return libc.call_sites[ret]


def _call_target(libc: LibcInfo, ret: int) -> Optional[str]:
    code = read_memory(ret - 6, 6)
    target = call_before(code, ret) if code else None
    for _ in range(2):  # the call's target, else the PLT stub's GOT slot
        if target is None:
            return None
        kind, where = target
        address = read_u64(where) if kind == "slot" else where
        if address is None:
            return None
        name = libc.allocators.entry_named(address)
        if name or kind == "slot":
            return name
        stub = read_memory(address, 16)
        slot = plt_slot(stub, address) if stub else None
        target = ("slot", slot) if slot is not None else None
    return None


def add_context(ev: M.BrkEvent, frame, libc: Optional[LibcInfo], bt: int) -> None:
    """Fills the event's via, caller, backtrace (bt frames) and alloc from the frames from
    `frame` (the newest) outwards."""
    via: list = []
    libc_frames: list = []
    alloc_frame, alloc_entry, n = None, None, 0
    f = frame
    while f is not None and n < MAX_LIBC_FRAMES:
        pc = f.pc()
        if not _in_libc(libc, f, pc):
            break
        libc_frames.append(f)
        name = f.name()
        if name and (not via or via[-1] != name):
            via.append(name)
        # An older frame's pc is a return address: pc - 1 is in the call, even a last one.
        entry = _allocator(libc, name, pc if f is frame else pc - 1)
        if entry:  # the outermost wins: realloc's own call of malloc is realloc's business
            alloc_frame, alloc_entry = f, entry
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
    called = _called_entry(libc, f) if libc_frames and ev.caller else None
    if alloc_frame is not None and alloc_entry is not None:
        ev.alloc = alloc_request(alloc_frame, called or alloc_entry, libc_frames, alloc_entry)
    elif called:  # the entry point tail-called code that is not only its own (munmap)
        ev.alloc = {"function": called, "size": None, "frame": None}


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


# The request's arguments in an entry point's frame, or in the function it tail-called (glibc
# 2.43's __libc_calloc2 has the product only): the first set that are all arguments there.
_ALLOC_ARGS: Dict[str, Tuple[Tuple[str, ...], ...]] = {
    "malloc": (("bytes",),),
    "realloc": (("bytes",),),
    "reallocarray": (("nmemb", "elem_size"),),
    "memalign": (("bytes",),),
    "aligned_alloc": (("bytes",),),
    "valloc": (("bytes",),),
    "pvalloc": (("bytes",),),
    "posix_memalign": (("size",),),
    "calloc": (("n", "elem_size"), ("sz",)),
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
# free's chunk (2 words below the user's pointer) in the functions that free hands it to.
_FREE_CHUNK_HOLDERS = ("_int_free_chunk", "munmap_chunk", "_int_free")


def _read_ints(frame, names) -> Optional[List[int]]:
    """The values of the frame's arguments `names` (locals of those names do not count), or
    None when one is missing, optimized out or unreadable (no debug info)."""
    try:
        block = frame.block()
        vals = []
        for n in names:
            sym = gdb.lookup_symbol(n, block, gdb.SYMBOL_VAR_DOMAIN)[0]
            if sym is None or not sym.is_argument:
                return None
            v = sym.value(frame)
            if v.is_optimized_out:
                return None
            vals.append(int(v))
        return vals
    except (gdb.error, ValueError, RuntimeError):
        return None


def _word_size() -> int:
    try:
        return gdb.lookup_type("void").pointer().sizeof
    except gdb.error:
        return 8


def alloc_request(frame, name: str, libc_frames=(), runs: Optional[str] = None) -> dict:
    """{"function", "size"} of the call of allocator `name` that `frame` runs the code of
    (`runs`: the entry point that code is, when the call handed over to another: valloc to
    memalign's) ("pointer" for free), read from its arguments or, when they are optimized out,
    from libc's inner frames; "frame": gdb's name of that frame (`__libc_malloc2` after glibc
    2.43's tail call)."""
    out: Dict[str, object] = {"function": name, "size": None, "frame": frame.name()}
    choices = _ALLOC_ARGS.get(name, ()) + (_ALLOC_ARGS.get(runs, ()) if runs and runs != name else ())
    if choices:
        vals = next((v for v in (_read_ints(frame, c) for c in choices) if v is not None), None)
        inner_name = name if name in _INNER_REQUEST else runs
        if vals is None and inner_name in _INNER_REQUEST:
            inner, var = _INNER_REQUEST[inner_name]
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
        else:
            for f in libc_frames:
                if f.name() in _FREE_CHUNK_HOLDERS:
                    p = _read_ints(f, ("p",))
                    if p is not None:
                        out["pointer"] = p[0] + 2 * _word_size()
                        break
    return out
