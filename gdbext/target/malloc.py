"""What the glibc malloc model needs from gdb: debug types, symbols and per-thread TLS pointers."""

from typing import Dict, Optional, Tuple

import gdb

from .process import cached, symbol_address


def struct_info(name: str) -> Optional[Tuple[int, Dict[str, Tuple[int, int]]]]:
    """(sizeof, {field: (offset, size)}) of a struct from debug info, or None without it."""
    try:
        t = gdb.lookup_type(name).strip_typedefs()
    except gdb.error:
        return None
    if t.code not in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION):
        return None
    fields = {}
    for f in t.fields():
        if f.name and getattr(f, "bitpos", None) is not None:
            fields[f.name] = (f.bitpos // 8, f.type.sizeof)
    return t.sizeof, fields


def libc_symbol(name: str) -> Optional[int]:
    return cached(("sym", name), lambda: symbol_address(name))


def _tls_pointer(name: str) -> Optional[int]:
    """A __thread pointer of libc in the selected thread, through libthread_db."""
    try:
        sym = gdb.lookup_static_symbol(name) or gdb.lookup_global_symbol(name)
        if sym is not None:
            return int(sym.value())
    except (gdb.error, RuntimeError, ValueError):
        pass
    try:
        return int(gdb.parse_and_eval(f"(unsigned long)'{name}'"))
    except gdb.error:
        return None


def per_thread_pointers(names=("tcache", "thread_arena")) -> Dict[int, Dict[str, Optional[int]]]:
    """{gdb thread number: {name: value}} for libc's TLS pointers, each thread visited once."""
    def compute():
        inf = gdb.selected_inferior()
        out = {}
        try:
            old = gdb.selected_thread()
            old_frame = gdb.selected_frame() if old else None
        except gdb.error:
            old, old_frame = None, None
        try:
            for t in sorted(inf.threads(), key=lambda t: t.num):
                if not t.is_valid() or t.is_exited():
                    continue
                t.switch()
                out[t.num] = {n: _tls_pointer(n) for n in names}
        finally:
            try:
                if old is not None and old.is_valid():
                    old.switch()
                    if old_frame is not None and old_frame.is_valid():
                        old_frame.select()
            except gdb.error:
                pass
        return out
    return cached(("tls", tuple(names)), compute)
