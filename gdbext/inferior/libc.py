"""Which libc the inferior runs and whether its debug types are loaded."""

import os
import re
from typing import Optional, Tuple


from ..model.libcsyms import libc_symbols
from ..model.libcversion import looks_like_libc, version_from_bare_string, version_from_bytes
from ..model.memory import MemoryReadError
from ..model.provenance import How, Provenance
from .debuginfo import libc_struct_info
from .mappings import mappings
from .process import Target, cached, symbol_address


def _libc_file_mappings(target: Target):
    return [m for m in mappings(target) if looks_like_libc(m.path)]


def glibc_version(target: Target) -> Optional[Tuple[int, int]]:
    return glibc_version_found(target)[0]


def glibc_version_found(target: Target) -> Tuple[Optional[Tuple[int, int]], Provenance]:
    """(version, how it was found): from the banner, a symbol, or a heuristic."""
    return cached("glibc_version", lambda: _glibc_version(target))


def _glibc_version(target: Target):
    maps = _libc_file_mappings(target)
    if not maps:
        # A static binary carries glibc inside the executable: look in its read-only segments.
        exe = next(
            (
                m.path
                for m in mappings(target)
                if m.offset == 0 and not m.anonymous and not m.path.startswith("[")
            ),
            None,
        )
        maps = [m for m in mappings(target) if m.path == exe]
    v = _version_from_file(target, maps, version_from_bytes)
    if v:
        return v, Provenance(How.BANNER)
    readonly = []
    for m in maps:
        if m.perms[:3] != "r--":
            continue
        try:
            data = target.memory.read(m.start, m.size)
        except MemoryReadError:
            continue
        readonly.append(data)
        v = version_from_bytes(data)
        if v:
            return v, Provenance(How.BANNER)
    v = _version_from_symbol(target)
    if v:
        return v, Provenance(How.SYMBOL)
    v = _version_from_file(target, maps, version_from_bare_string) or version_from_bare_string(
        b"\0".join(readonly)
    )
    if v:
        return v, Provenance(
            How.HEURISTIC, "the one bare version string in a program holding glibc malloc's tunables"
        )
    return None, Provenance(How.NOT_FOUND)


# A static program has no banner (nothing references it), but libthread_db's version check
# needs libc's own VERSION string under this name, so it is linked in with pthread_create
# (a local `nptl_version` in libpthread before glibc 2.34 merged it into libc).
VERSION_SYMBOLS = ("__nptl_version", "nptl_version", "__libc_version")


def _version_from_symbol(target: Target):
    for name in VERSION_SYMBOLS:
        address = symbol_address(name)
        if not address:
            continue
        try:
            text = target.memory.read(address, 16).split(b"\0", 1)[0]
        except MemoryReadError:
            continue
        m = re.fullmatch(rb"(\d+)\.(\d+)(?:\.\d+)?", text)
        if m:
            return int(m.group(1)), int(m.group(2))
    return None


def _version_from_file(target: Target, maps, parse):
    """For a local process, the file on disk: reading the inferior would fault its pages in."""
    if target.kind != "live" or not maps:
        return None
    path = maps[0].path
    try:
        if os.stat(path).st_ino != maps[0].inode:
            return None  # replaced since it was loaded
        with open(path, "rb") as f:
            return parse(f.read(64 << 20))
    except OSError:
        return None


def libc_symbol_address(target: Target, name: str) -> Optional[int]:
    """Address of libc's own global `name`, or None.  gdb's look-up may answer with another
    object's copy (ld.so has its own __curbrk), libc's symbol table does not: gdb is asked only
    when libc's file cannot be read here (a core or remote target whose paths are not this
    machine's files, a deleted file, libc not loaded yet) or, in a static program, which has
    one copy of everything, when the file's table lacks the name (a separate debug file)."""
    lib = cached(("libc_symbols", name), lambda: _libc_symbols(target, name))
    if lib is not None and (name in lib.syms or not lib.static):
        return lib.address(name)
    return symbol_address(name)


def _libc_symbols(target: Target, name: str):
    def read(address: int, size: int):
        try:
            return target.memory.read(address, size)
        except MemoryReadError:
            return None

    lib, _ = libc_symbols(mappings(target), (name,), read, local=target.local_proc is not None)
    return lib


def version_text(v) -> Optional[str]:
    return f"{v[0]}.{v[1]}" if v else None


def has_libc_debug_types(target: Target) -> bool:
    """Whether libc's own debug info (its malloc.c) is loaded: a program's struct named
    malloc_state does not count."""
    return cached(
        "libc_types",
        lambda: libc_struct_info(libc_starts(mappings(target)))("struct malloc_state") is not None,
    )


def libc_starts(maps) -> Tuple[int, ...]:
    """Where the shared libc's mappings start; none for a static program."""
    return tuple(sorted(m.start for m in maps if looks_like_libc(m.path)))


def target_json(target: Target) -> dict:
    return target.info(version_text(glibc_version(target)), has_libc_debug_types(target))
