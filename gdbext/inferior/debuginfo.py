"""Debug types, symbols and per-thread TLS pointers, from gdb (what the heap model needs from debug info)."""

from typing import Dict, Optional, Tuple

import gdb

from ..model.targetkind import selected_checkpoint_is_fork
from .process import cached
from .threads import selection_kept


def struct_info(name: str, block=None) -> Optional[Tuple[int, Dict[str, Tuple[int, int]]]]:
    """(sizeof, {field: (offset, size)}) of a struct from debug info, or None without it.
    `block`: where the look-up starts."""
    try:
        t = gdb.lookup_type(name, block) if block is not None else gdb.lookup_type(name)
    except (gdb.error, RuntimeError):
        return None
    return _fields_of(t)


def _fields_of(t) -> Optional[Tuple[int, Dict[str, Tuple[int, int]]]]:
    try:
        t = t.strip_typedefs()
        if t.code not in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION):
            return None
        fields = {}
        for f in t.fields():
            if f.name and getattr(f, "bitpos", None) is not None:
                fields[f.name] = (f.bitpos // 8, f.type.sizeof)
        return t.sizeof, fields
    except (gdb.error, RuntimeError):
        return None


# malloc's structs as the types of libc's own variables: a look-up by name may answer with a
# program's struct of the same name (an embedded dlmalloc has its own struct malloc_state),
# since libc's malloc.c sees some of them only through a forward declaration.
_TYPE_OF = {
    "struct malloc_state": ("main_arena", ""),
    "struct malloc_par": ("mp_", ""),
    "tcache_perthread_struct": ("tcache", "*"),
    "struct tcache_perthread_struct": ("tcache", "*"),
}


def libc_struct_info(libc_starts: Tuple[int, ...]):
    """struct_info restricted to libc's own debug info: `name -> (sizeof, fields)` or None;
    always None when libc's debug info is not loaded, whatever the program defines."""
    objfile = libc_objfile(libc_starts)
    anchor = libc_debug_symbol(objfile, "main_arena")

    def info(name: str):
        if anchor is None:
            return None
        var, deref = _TYPE_OF.get(name, (None, ""))
        if var is not None:
            sym = libc_debug_symbol(objfile, var)
            if sym is None:
                return None
            try:
                return _fields_of(sym.type.strip_typedefs().target() if deref else sym.type)
            except (gdb.error, RuntimeError):
                return None
        try:  # defined in malloc.c itself (heap_info, tcache_entry): its static block first
            return struct_info(name, anchor.symtab.static_block())
        except (gdb.error, RuntimeError, AttributeError):
            return None

    return info


def libc_objfile(libc_starts: Tuple[int, ...]):
    """gdb's objfile of the shared libc whose mappings start at libc_starts (its debug info,
    when loaded, hangs off it as a separate objfile that its look-ups search too), or None: a
    static program, or a libc gdb has not loaded."""

    def find():
        for start in libc_starts:
            try:
                name = gdb.solib_name(start)  # gdb knows a library by its code's range
            except (gdb.error, RuntimeError):
                continue
            if name:
                return next(
                    (o for o in gdb.objfiles() if o.is_valid() and o.owner is None and o.filename == name),
                    None,
                )
        return None

    return cached(("libc_objfile", libc_starts), find)


def libc_debug_symbol(objfile, name: str):
    """libc's own variable `name` from its debug info, never another object's of that name
    (a program may call its own allocator's arena main_arena)."""
    if objfile is None:
        return None
    try:
        sym = objfile.lookup_static_symbol(name) or objfile.lookup_global_symbol(name)
    except (gdb.error, RuntimeError, AttributeError):
        return None
    return sym if sym is not None and sym.is_variable else None


def libc_symbol(libc_starts: Tuple[int, ...], name: str) -> Optional[int]:
    """Address of libc's variable `name` from libc's debug info, or None."""

    def find():
        sym = libc_debug_symbol(libc_objfile(libc_starts), name)
        try:
            return int(sym.value().address) if sym is not None else None
        except (gdb.error, RuntimeError, TypeError):
            return None

    return cached(("sym", libc_starts, name), find)


def _tls_pointer(sym) -> Optional[int]:
    """A __thread pointer of libc in the selected thread, through libthread_db."""
    try:
        return int(sym.value())
    except (gdb.error, RuntimeError, ValueError):
        return None


def per_thread_pointers(
    libc_starts: Tuple[int, ...], names=("tcache", "thread_arena")
) -> Dict[int, Dict[str, Optional[int]]]:
    """{gdb thread number: {name: value}} for libc's TLS pointers, each thread visited once;
    {} when libc's debug info does not define them."""

    def compute():
        inf = gdb.selected_inferior()
        objfile = libc_objfile(libc_starts)
        syms = {n: libc_debug_symbol(objfile, n) for n in names}
        if not all(syms.values()):
            return {}
        out = {}
        with selection_kept():
            for t in sorted(inf.threads(), key=lambda t: t.num):
                if not t.is_valid() or t.is_exited():
                    continue
                t.switch()
                out[t.num] = {n: _tls_pointer(syms[n]) for n in names}
        return out

    return cached(("tls", libc_starts, tuple(names)), compute)


def restarted_checkpoint() -> bool:
    """Whether the selected process is a checkpoint gdb restarted (`checkpoint`, `restart N`):
    gdb 13 crashes reading libc's thread-local variables there, so they must not be read."""
    try:
        text = gdb.execute("info checkpoints", to_string=True)
    except gdb.error:
        return False
    return selected_checkpoint_is_fork(text)
