"""libc's own symbols from its file, checked on this very process (no gdb)."""

import ctypes
import dataclasses
import os

import pytest

from gdbext.model.libcsyms import libc_mappings, libc_symbols
from gdbext.model.regions import Mapping, parse_proc_maps


def own_maps():
    with open("/proc/self/maps") as f:
        return parse_proc_maps(f.read())


def read_own_memory(address, size):
    try:
        with open("/proc/self/mem", "rb") as f:
            f.seek(address)
            return f.read(size)
    except (OSError, OverflowError, ValueError):
        return None


pytestmark = pytest.mark.skipif(
    os.uname().machine != "x86_64" or not libc_mappings(own_maps())[0]
    or libc_mappings(own_maps())[1], reason="needs a dynamically linked x86-64 glibc process")


def libc_break():
    libc = ctypes.CDLL(None)
    libc.sbrk.restype = ctypes.c_void_p
    libc.sbrk.argtypes = [ctypes.c_long]
    return libc.sbrk(0)


def test_curbrk_is_libcs_own():
    lib, why = libc_symbols(own_maps(), ["__curbrk", "brk", "no_such_symbol"],
                            read_own_memory, local=True)
    assert lib is not None, why
    assert not lib.static and lib.bias == min(s for s, _ in lib.ranges)
    assert "no_such_symbol" not in lib.syms and lib.address("no_such_symbol") is None
    word = read_own_memory(lib.address("__curbrk"), 8)  # libc's bss, maybe past its mappings
    assert word and int.from_bytes(word, "little") == libc_break()
    assert lib.syms["brk"][1] > 0


def test_bias_from_the_file_when_memory_is_unreadable():
    """A core or remote target that lacks the page: libc's offset-0 mapping start is the bias."""
    live, _ = libc_symbols(own_maps(), ["__curbrk"], read_own_memory, local=True)
    no_inodes = [dataclasses.replace(m, inode=0) for m in own_maps()]
    lib, why = libc_symbols(no_inodes, ["__curbrk"], None, local=False)
    assert lib is not None, why
    assert lib.bias == live.bias and lib.syms == live.syms


def test_another_file_is_refused():
    maps = own_maps()
    libc = libc_mappings(maps)[0]
    # the same path, but memory holding another object's first page (another machine's libc)
    first = min(libc, key=lambda m: m.start)
    other = next(m for m in maps if m.path and m.path != first.path and m.offset == 0
                 and not m.path.startswith("["))
    lib, why = libc_symbols(maps, ["__curbrk"], lambda a, n: read_own_memory(other.start, n),
                            local=False)
    assert lib is None and "not the file the process loaded" in why
    # the inode of a local process's mapping must be the file's
    wrong = [dataclasses.replace(m, inode=m.inode + 1) if m.path == first.path else m
             for m in maps]
    lib, why = libc_symbols(wrong, ["__curbrk"], read_own_memory, local=True)
    assert lib is None and "not the file the process loaded" in why


def test_no_libc_yet_and_unreadable_file():
    loader_only = [Mapping(0x1000, 0x2000, "r--p", 0, "/lib64/ld-linux-x86-64.so.2")]
    assert libc_symbols(loader_only, ["__curbrk"], None, local=False) == \
        (None, "libc is not loaded yet")
    gone = [Mapping(0x1000, 0x2000, "r--p", 0, "/nonexistent/libc.so.6")]
    lib, why = libc_symbols(gone, ["__curbrk"], None, local=False)
    assert lib is None and why.startswith("cannot open")
