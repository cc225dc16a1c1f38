"""Where a shared library's own static TLS variable lives, from the library's ELF file alone.

glibc >= 2.43 starts each thread's malloc `tcache` pointer at a static, all-zero dummy tcache
in libc's read-only data (`tcache` is a `static __thread` pointer initialised to the dummy's
address), and gives a thread a real tcache only on its first free.  Without libc's debug
symbols that variable has no name, but the file still says where it is:

* PT_TLS is the library's TLS image: its initialised part (.tdata) holds, at the variable's
  offset in the block, the link-time address of the dummy: a word pointing into a read-only
  segment at bytes that are all zero for a tcache's size.  No other initialised TLS word of
  libc points at zeros (the others point to the locale and its ctype tables).
* libc reads the variable in the initial-exec model, through a GOT word that ld.so fills with
  the variable's offset from the thread pointer: a dynamic relocation R_X86_64_TPOFF64 with
  no symbol whose addend is the variable's offset in the TLS block.

So the run-time offset from each thread's thread pointer is the GOT word at (load bias + that
relocation's r_offset), read from the process; on x86-64 (TLS variant II) it is negative.
Only 64-bit x86-64 objects are read; other machines give None (callers keep their search).
"""

import struct
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from .elfheader import elf_header, program_header

Reader = Callable[[int, int], bytes]  # (file offset, size) -> bytes, shorter at the end

EM_X86_64 = 62
PT_LOAD, PT_DYNAMIC, PT_TLS = 1, 2, 7
PF_W = 2
DT_NULL, DT_RELA, DT_RELASZ, DT_RELAENT = 0, 7, 8, 9
R_X86_64_RELATIVE, R_X86_64_TPOFF64 = 8, 18
RELA_SIZE = 24
MAX_TABLE = 16 << 20


@dataclass(frozen=True)
class TlsImage:
    """A PT_TLS segment: `init` is its initialised part (.tdata) as in the file."""

    vaddr: int  # link-time address of the image
    init: bytes
    memsz: int  # .tdata + .tbss
    align: int


@dataclass(frozen=True)
class TlsVariable:
    """A static TLS variable the object reads in the initial-exec model."""

    offset: int  # in the object's TLS block
    got: int  # link-time address of the GOT word that holds its offset from the thread pointer
    initial: int  # its initial value in the TLS image (a link-time address for a pointer)


@dataclass(frozen=True)
class _Elf:
    loads: Tuple[Tuple[int, int, int, int, int], ...]  # (flags, offset, vaddr, filesz, memsz)
    tls: Optional[Tuple[int, int, int, int, int]]  # (offset, vaddr, filesz, memsz, align)
    dynamic: Optional[Tuple[int, int]]  # (file offset, size)


def _program_headers(read: Reader) -> Optional[_Elf]:
    head = read(0, 64)
    try:
        h = elf_header(head)
    except struct.error:
        return None
    if h is None or h.word != 8 or struct.unpack_from("<H", head, 0x12)[0] != EM_X86_64:
        return None
    if h.phentsize < h.phdr_size or not 0 < h.phnum <= 256:
        return None
    table = read(h.phoff, h.phentsize * h.phnum)
    if len(table) < h.phentsize * h.phnum:
        return None
    loads, tls, dynamic = [], None, None
    for i in range(h.phnum):
        p_type, flags, offset, vaddr, filesz, memsz = program_header(table, i * h.phentsize, 8)
        if p_type == PT_LOAD:
            loads.append((flags, offset, vaddr, filesz, memsz))
        elif p_type == PT_DYNAMIC:
            dynamic = (offset, filesz)
        elif p_type == PT_TLS:
            (align,) = struct.unpack_from("<Q", table, i * h.phentsize + 48)
            tls = (offset, vaddr, filesz, memsz, align)
    return _Elf(tuple(loads), tls, dynamic)


def tls_image(read: Reader) -> Optional[TlsImage]:
    """The object's PT_TLS segment, or None (no TLS, not a 64-bit x86-64 ELF, truncated)."""
    elf = _program_headers(read)
    return _tls_image(read, elf) if elf is not None else None


def _tls_image(read: Reader, elf: _Elf) -> Optional[TlsImage]:
    if elf.tls is None:
        return None
    offset, vaddr, filesz, memsz, align = elf.tls
    if filesz > MAX_TABLE:
        return None
    init = read(offset, filesz)
    if len(init) < filesz:
        return None
    return TlsImage(vaddr, init, memsz, align)


def _file_offset(elf: _Elf, vaddr: int, size: int, writable: Optional[bool] = None) -> Optional[int]:
    """The file offset of [vaddr, vaddr + size) when a PT_LOAD holds all of it in the file
    (and, with `writable`, when that segment's write permission is as asked)."""
    for flags, offset, start, filesz, _ in elf.loads:
        if writable is not None and bool(flags & PF_W) != writable:
            continue
        if start <= vaddr and vaddr + size <= start + filesz:
            return offset + vaddr - start
    return None


def _relocations(read: Reader, elf: _Elf) -> List[Tuple[int, int, int, int]]:
    """The object's RELA dynamic relocations (DT_RELA), as (r_offset, type, symbol, addend)."""
    if elf.dynamic is None:
        return []
    offset, size = elf.dynamic
    dyn = read(offset, min(size, MAX_TABLE))
    tags: Dict[int, int] = {}
    for pos in range(0, len(dyn) - 15, 16):
        tag, value = struct.unpack_from("<qQ", dyn, pos)
        if tag == DT_NULL:
            break
        tags.setdefault(tag, value)
    if DT_RELA not in tags or not 0 < tags.get(DT_RELASZ, 0) <= MAX_TABLE:
        return []
    entsize = tags.get(DT_RELAENT, RELA_SIZE)
    if entsize < RELA_SIZE:
        return []
    where = _file_offset(elf, tags[DT_RELA], tags[DT_RELASZ])
    if where is None:
        return []
    table = read(where, tags[DT_RELASZ])
    out = []
    for pos in range(0, len(table) - RELA_SIZE + 1, entsize):
        r_offset, info, addend = struct.unpack_from("<QQq", table, pos)
        out.append((r_offset, info & 0xFFFFFFFF, info >> 32, addend))
    return out


def initial_exec_slots(read: Reader) -> Dict[int, int]:
    """{offset in the object's TLS block: link-time address of its GOT word} for the object's
    own static TLS variables read in the initial-exec model (R_X86_64_TPOFF64 relocations
    without a symbol)."""
    elf = _program_headers(read)
    return _initial_exec_slots(_relocations(read, elf)) if elf is not None else {}


def _initial_exec_slots(relocations: List[Tuple[int, int, int, int]]) -> Dict[int, int]:
    out: Dict[int, int] = {}
    for r_offset, kind, sym, addend in relocations:
        if kind == R_X86_64_TPOFF64 and sym == 0 and addend >= 0:
            out.setdefault(addend, r_offset)
    return out


def pointer_to_zeros(read: Reader, zero_size: int) -> Optional[TlsVariable]:
    """The one initial-exec TLS variable whose initial value points into a read-only segment
    of the object at `zero_size` bytes that are all zero (glibc >= 2.43's `tcache`, which
    starts at the empty dummy tcache); None when there is not exactly one."""
    elf = _program_headers(read)
    image = _tls_image(read, elf) if elf is not None else None
    if elf is None or image is None or zero_size <= 0:
        return None
    relocations = _relocations(read, elf)
    slots = _initial_exec_slots(relocations)
    # A relocated word of the image may hold its value in the relocation, not in the file.
    addends = {
        r_offset - image.vaddr: addend
        for r_offset, kind, sym, addend in relocations
        if kind == R_X86_64_RELATIVE and image.vaddr <= r_offset < image.vaddr + len(image.init)
    }
    found = []
    for offset in range(0, len(image.init) - 7, 8):
        if offset not in slots:
            continue
        (value,) = struct.unpack_from("<Q", image.init, offset)
        value = value or addends.get(offset, 0)
        if not value:
            continue
        where = _file_offset(elf, value, zero_size, writable=False)
        if where is None:
            continue
        data = read(where, zero_size)
        if len(data) == zero_size and not any(data):
            found.append(TlsVariable(offset, slots[offset], value))
    return found[0] if len(found) == 1 else None


def bytes_reader(data: bytes) -> Reader:
    """A Reader over a whole file already in memory."""
    return lambda offset, size: data[offset : offset + size]
