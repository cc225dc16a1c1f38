"""Which libc code runs for which allocator entry point, without gdb: the unwind table's
function starts, the tail calls read from disassembly, the call site before a return address;
then on real libcs (the host's and the cached Debian ones), checked against binutils' reading
of libc's symbol tables (nm on the file, and on libc6-dbg's full .symtab when cached)."""

import glob
import os
import re
import struct
import subprocess

import pytest

from gdbext.model.allocentries import allocator_code, tail_calls
from gdbext.model.callsite import call_before, plt_slot
from gdbext.model.ehframe import function_starts

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def eh_frame_hdr(starts, address, fde_base=0x9000):
    """An .eh_frame_hdr at `address` listing functions at `starts` (FDE addresses made up)."""
    head = bytes([1, 0x1B, 0x03, 0x3B]) + struct.pack("<iI", 0x100, len(starts))
    table = b"".join(struct.pack("<ii", s - address, fde_base + 8 * i - address)
                     for i, s in enumerate(starts))
    return head + table


def test_function_starts_and_bounds():
    hdr = eh_frame_hdr([0x1000, 0x1040, 0x10C0], 0x8000)
    fs = function_starts(hdr, 0x8000)
    assert fs.starts == [0x1000, 0x1040, 0x10C0]
    assert fs.bounds(0x1040) == (0x1040, 0x10C0)
    assert fs.bounds(0x1041) is None  # not a start: a jump into a function
    assert fs.bounds(0x10C0) is None  # the last one's end is unknown


def test_function_starts_refuses_what_it_cannot_read():
    hdr = eh_frame_hdr([0x1000, 0x1040], 0x8000)
    assert function_starts(hdr[:3], 0x8000) is None
    assert function_starts(b"\x02" + hdr[1:], 0x8000) is None  # version
    assert function_starts(hdr[:3] + b"\x1b" + hdr[4:], 0x8000) is None  # table encoding
    assert function_starts(hdr[:-4], 0x8000) is None  # table cut short


GDB_MALLOC_243 = [  # gdb's disassembly, AT&T and Intel, of jumps in and out of a function
    (0x7FFFF7E6CCB0, 4, "endbr64"),
    (0x7FFFF7E6CCF0, 2, "je     0x7ffff7e6cd10 <malloc+96>"),
    (0x7FFFF7E6CD00, 2, "jmp    0x7ffff7e6cd40 <malloc+144>"),
    (0x7FFFF7E6CD26, 5, "jmp    0x7ffff7e6bcf0 <__libc_malloc2>"),
    (0x7FFFF7E6CD2B, 6, "jmp    *0x1234(%rip)        # 0x7ffff7f00000"),
    (0x7FFFF7E6CD31, 6, "jmp    QWORD PTR [rip+0x1234]        # 0x7ffff7f00000"),
    (0x7FFFF7E6CD37, 6, "bnd jmp 0x7ffff7e6a000"),
    (0x7FFFF7E6CD3D, 5, "jmp    0x7ffff7e6bcf0 <__libc_malloc2>"),
    (0x7FFFF7E6CD42, 5, "call   0x7ffff7e68b50"),
]


def test_tail_calls_are_direct_jumps_out():
    assert tail_calls(GDB_MALLOC_243, 0x7FFFF7E6CCB0, 0x7FFFF7E6CDF4) == [0x7FFFF7E6BCF0, 0x7FFFF7E6A000]


def test_allocator_code_follows_tail_calls_once():
    starts = [0x100, 0x200, 0x300, 0x400, 0x500, 0x600, 0x700, 0x800]
    fs = function_starts(eh_frame_hdr(starts, 0x9000), 0x9000)
    entries = {"malloc": (0x400, 0x80), "free": (0x500, 0x40), "memalign": (0x600, 0x10),
               "valloc": (0x700, 0x10), "pvalloc": (0x710, 0x10)}
    jumps = {"malloc": [0x100, 0x820], "free": [0x200, 0x500], "memalign": [0x300],
             "valloc": [0x300], "realloc": [0x400]}
    code = allocator_code(entries, jumps, fs)
    assert code.entry_at(0x410) == "malloc" and code.entry_at(0x480) is None  # past its size
    assert code.entry_at(0x1FF) == "malloc"  # __libc_malloc2: up to the next function
    assert code.entry_at(0x830) is None  # 0x820 starts no function
    assert code.entry_at(0x210) == "free"
    assert code.entry_at(0x310) == "memalign"  # shared by memalign and valloc: the first one
    assert code.entry_at(0x705) == "valloc" and code.entry_at(0x712) == "pvalloc"
    assert code.entry_named(0x700) == "valloc" and code.entry_named(0x701) is None
    assert allocator_code(entries, jumps, None).entry_at(0x110) is None  # no unwind table


def test_allocator_code_takes_the_start_hooks_initialisers():
    """Before 2.34 the first malloc goes through malloc_hook_ini (what __malloc_hook holds at
    start-up), which jumps back to malloc's start: that function is malloc's code, so that the
    jump is seen as a re-entry and the call counted once."""
    starts = [0x100, 0x200, 0x300, 0x400, 0x500]
    fs = function_starts(eh_frame_hdr(starts, 0x9000), 0x9000)
    entries = {"malloc": (0x400, 0x80), "realloc": (0x500, 0x40)}
    code = allocator_code(entries, {"malloc": [0x100]}, fs, {"malloc": 0x200, "realloc": 0x100})
    assert code.entry_at(0x210) == "malloc" and code.entry_at(0x2FF) == "malloc"
    assert code.entry_at(0x110) == "malloc"  # a tail call of malloc's already: named first
    assert code.entry_at(0x310) is None
    assert allocator_code(entries, {}, fs, {"malloc": 0x250}).entry_at(0x260) is None  # no start
    assert allocator_code(entries, {}, None, {"malloc": 0x200}).entry_at(0x210) is None


def test_call_before_a_return_address():
    ret = 0x555555557291
    rel = struct.pack("<i", -0x1000)
    assert call_before(b"\x90\xe8" + rel, ret) == ("code", ret - 0x1000)
    assert call_before(b"\xff\x15" + struct.pack("<i", 0x2D00), ret) == ("slot", ret + 0x2D00)
    assert call_before(b"\x90\x90\x90\x90\xff\xd0", ret) is None  # call *%rax
    assert call_before(b"\xe8", ret) is None


def test_plt_slot():
    disp = struct.pack("<i", 0x2FE2)
    assert plt_slot(b"\xff\x25" + disp + b"\x68\0\0\0\0", 0x1030) == 0x1036 + 0x2FE2
    assert plt_slot(b"\xf3\x0f\x1e\xfa\xf2\xff\x25" + disp, 0x1030) == 0x103B + 0x2FE2
    assert plt_slot(b"\xf3\x0f\x1e\xfa\xff\x25" + disp, 0x1030) == 0x103A + 0x2FE2
    assert plt_slot(b"\x55\x48\x89\xe5", 0x1030) is None


# ---- real libcs ---------------------------------------------------------------------------

def _libcs():
    host = "/lib/x86_64-linux-gnu/libc.so.6"
    found = [host] if os.path.exists(host) else []
    cache = os.path.join(ROOT, "tests", ".cache", "glibc")
    for pattern in ("*/usr/lib/x86_64-linux-gnu/libc.so.6", "*/lib/x86_64-linux-gnu/libc.so.6"):
        found += sorted(glob.glob(os.path.join(cache, pattern)))
    return found


def _libc_id(path):
    return "host" if path.startswith("/lib/") else os.path.relpath(path, ROOT).split(os.sep)[3]


def _nm(path, dynamic):
    out = subprocess.run(["nm", "-S", "--defined-only"] + (["-D"] if dynamic else []) + [path],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    syms = {}
    for m in re.finditer(r"^([0-9a-f]+) ([0-9a-f]+) [tTwW] ([\w.]+)", out, re.M):
        syms.setdefault(m.group(3), (int(m.group(1), 16), int(m.group(2), 16)))
    return syms


def _eh_frame_hdr(path):
    with open(path, "rb") as f:
        data = f.read()
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack_from(
            "<IIQQQQQQ", data, phoff + i * phentsize)
        if p_type == 0x6474E550:
            return function_starts(data[p_offset:p_offset + p_filesz], p_vaddr)
    return None


def _objdump_insns(path, start, size):
    """objdump's disassembly as gdb's (address, length, text), targets written 0x..."""
    done = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--start-address={start:#x}",
                           f"--stop-address={start + size:#x}", path],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:  # an older binutils (bullseye's 2.35) than the libc was built with
        pytest.skip(f"this system's objdump cannot disassemble {path}: {done.stderr.strip()[-200:]}")
    out = done.stdout
    insns = []
    for m in re.finditer(r"^\s*([0-9a-f]+):\s+(\S.*)$", out, re.M):
        text = re.sub(r"^((?:bnd |notrack )*jmp\s+)([0-9a-f]+)\b", r"\g<1>0x\2", m.group(2))
        insns.append((int(m.group(1), 16), 0, text))
    return insns


def _debug_file(libc):
    """libc6-dbg's file for a cached libc (its .symtab names the static functions)."""
    build = subprocess.run(["readelf", "-n", libc], stdout=subprocess.PIPE, text=True).stdout
    m = re.search(r"Build ID: ([0-9a-f]+)", build)
    root = re.sub(r"(/usr)?/lib/x86_64-linux-gnu/libc\.so\.6$", "", libc) or "/"
    path = os.path.join(root, "usr", "lib", "debug", ".build-id", m.group(1)[:2], m.group(1)[2:] + ".debug") if m else ""
    return path if os.path.exists(path) else None


@pytest.mark.parametrize("libc", _libcs(), ids=_libc_id)
def test_real_libc(libc):
    """Every exported entry point starts a function of the unwind table; with libc6-dbg's symbols,
    the code malloc, free and calloc hand over to (2.43: __libc_malloc2, _int_free_chunk,
    __libc_calloc2; every version: _mid_memalign) is theirs, and the inner functions are not."""
    dyn = _nm(libc, dynamic=True)
    fs = _eh_frame_hdr(libc)
    assert fs is not None
    names = ("malloc", "free", "calloc", "realloc", "memalign", "aligned_alloc", "valloc", "pvalloc",
             "posix_memalign", "reallocarray")
    entries = {n: dyn[n] for n in names}
    for n, (addr, _) in entries.items():
        assert fs.bounds(addr) is not None, n
    jumps = {n: tail_calls(_objdump_insns(libc, a, s), a, a + s) for n, (a, s) in entries.items()}
    code = allocator_code(entries, jumps, fs)
    for n, (addr, size) in entries.items():
        assert code.entry_at(addr + size - 1) in (n, "memalign")  # 2.31's aligned_alloc is memalign
    debug = _debug_file(libc)
    if debug is None:
        return
    full = _nm(debug, dynamic=False)
    owners = {"__libc_malloc2": "malloc", "_int_free_chunk": "free", "__libc_calloc2": "calloc",
              "_mid_memalign": "memalign"}
    for fn, owner in owners.items():
        if fn not in full:
            continue
        addr, size = full[fn]
        tail = any(addr in jumps[n] for n in names)
        want = owner if tail else None  # 2.41 calls _int_free_chunk: its own frame is free's
        assert code.entry_at(addr) == want and code.entry_at(addr + size - 1) == want, (fn, libc)
    for inner in ("_int_malloc", "sysmalloc", "_int_realloc", "_int_memalign"):
        addr, size = full[inner]
        assert code.entry_at(addr) is None and code.entry_at(addr + size - 1) is None, inner
