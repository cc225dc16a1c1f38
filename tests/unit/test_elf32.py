"""32-bit (i386) ELF objects and cores, built here byte by byte from the ELF specification's
ELF32 layouts: the same answers as for their 64-bit twins."""

import struct

import pytest

from gdbext.model import coremaps, elf, elfsyms, memmaps
from gdbext.model.elfheader import elf_header

PT_LOAD, PT_NOTE, PT_GNU_RELRO = 1, 4, 0x6474E552
R, W, X = 4, 2, 1


def ehdr(cls: int, e_type: int, phoff: int, phnum: int, shoff: int = 0, shnum: int = 0) -> bytes:
    ident = b"\x7fELF" + bytes([cls, 1, 1]) + bytes(9)
    if cls == 1:  # ELF32: 52 bytes, 32-byte program headers, 40-byte section headers
        return ident + struct.pack("<HHIIIIIHHHHHH", e_type, 3, 1, 0, phoff, shoff, 0, 52, 32, phnum,
                                   40, shnum, 0)
    return ident + struct.pack("<HHIQQQIHHHHHH", e_type, 62, 1, 0, phoff, shoff, 0, 64, 56, phnum,
                               64, shnum, 0)


def phdr(cls: int, p_type, flags, offset, vaddr, filesz, memsz) -> bytes:
    if cls == 1:
        return struct.pack("<8I", p_type, offset, vaddr, vaddr, filesz, memsz, flags, 0x1000)
    return struct.pack("<IIQQQQQQ", p_type, flags, offset, vaddr, vaddr, filesz, memsz, 0x1000)


SEGMENTS = [  # a small PIE: text, then data with a RELRO head and a bss tail
    (PT_LOAD, R, 0, 0, 0x1000, 0x1000),
    (PT_LOAD, R | X, 0x1000, 0x1000, 0x2000, 0x2000),
    (PT_LOAD, R | W, 0x3000, 0x3000, 0x1800, 0x4000),
    (PT_GNU_RELRO, R, 0x3000, 0x3000, 0x1000, 0x1000),
]


def object_bytes(cls: int) -> bytes:
    hsize = 52 if cls == 1 else 64
    head = ehdr(cls, 3, hsize, len(SEGMENTS)) + b"".join(phdr(cls, *s) for s in SEGMENTS)
    return head + bytes(0x1000 - len(head))


@pytest.mark.parametrize("cls", [1, 2], ids=["elf32", "elf64"])
def test_program_headers_of_either_class(cls):
    data = object_bytes(cls)
    assert elf_header(data).word == (4 if cls == 1 else 8)
    obj = elf.parse_program_headers(data, 0x56555000, "/prog")
    assert obj is not None and obj.bias == 0x56555000 and obj.relro == (0x56558000, 0x56559000)
    kinds = [(hex(a), hex(b), k) for a, b, k, _ in elf.pieces(obj)]
    assert kinds == [
        ("0x56555000", "0x56556000", "rodata"),
        ("0x56556000", "0x56558000", "code"),
        ("0x56558000", "0x56559000", "data"),
        ("0x56559000", "0x56559800", "data"),
        ("0x56559800", "0x5655c000", "bss"),
    ]
    phdrs = memmaps.program_headers(data)
    assert [p[:4] for p in phdrs] == [(t, f, o, v) for t, f, o, v, _, _ in SEGMENTS]
    maps = memmaps.object_mappings(phdrs, 0x56555000, "/prog")
    assert [(m.start, m.end, m.perms) for m in maps][-3:] == [
        (0x56558000, 0x56559000, "r--p"), (0x56559000, 0x5655a000, "rw-p"), (0x5655a000, 0x5655c000, "rw-p")]


def note(ntype: int, name: bytes, desc: bytes) -> bytes:
    pad = lambda b: b + bytes(-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(name), len(desc), ntype) + pad(name) + pad(desc)


@pytest.mark.parametrize("cls", [1, 2], ids=["elf32", "elf64"])
def test_core_mappings_of_either_class(cls):
    """A core's PT_LOADs with their permissions, named by its NT_FILE note, whose numbers are
    the process's longs: 4 bytes in an i386 core."""
    w = "I" if cls == 1 else "Q"
    files = [(0xF7D8D000, 0xF7DAF000, 0, b"/usr/lib/i386-linux-gnu/libc.so.6"),
             (0xF7DAF000, 0xF7F28000, 0x22, b"/usr/lib/i386-linux-gnu/libc.so.6")]
    desc = struct.pack("<" + 2 * w, len(files), 0x1000)
    desc += b"".join(struct.pack("<" + 3 * w, s, e, off) for s, e, off, _ in files)
    desc += b"".join(p + b"\0" for *_, p in files)
    notes = note(coremaps.NT_FILE, b"CORE\0", desc)
    loads = [(0x5655A000, 0x21000, R | W), (0xF7D8D000, 0x22000, R), (0xF7DAF000, 0x179000, R | X)]
    hsize, psize = (52, 32) if cls == 1 else (64, 56)
    n = 1 + len(loads)
    data_at = hsize + n * psize
    table = phdr(cls, PT_NOTE, 0, data_at, 0, len(notes), 0)
    table += b"".join(phdr(cls, PT_LOAD, f, 0, v, 0, size) for v, size, f in loads)
    core = ehdr(cls, 4, hsize, n) + table + notes
    maps = coremaps.core_mappings(lambda off, size: core[off:off + size])
    assert [(m.start, m.end, m.perms, m.offset, m.path) for m in maps] == [
        (0x5655A000, 0x5657B000, "rw-p", 0, ""),
        (0xF7D8D000, 0xF7DAF000, "r--p", 0, "/usr/lib/i386-linux-gnu/libc.so.6"),
        (0xF7DAF000, 0xF7F28000, "r-xp", 0x22000, "/usr/lib/i386-linux-gnu/libc.so.6"),
    ]
    assert elf.is_core_header(core[:18])


@pytest.mark.parametrize("cls", [1, 2], ids=["elf32", "elf64"])
def test_symbols_of_either_class(cls):
    """.symtab through the section headers: an object, a function, and a name not wanted."""
    strtab = b"\0__curbrk\0main_arena\0other\0"
    if cls == 1:
        sym = lambda name, value, size, info, shndx: struct.pack("<IIIBBH", name, value, size, info, 0, shndx)  # noqa: E731
    else:
        sym = lambda name, value, size, info, shndx: struct.pack("<IBBHQQ", name, info, 0, shndx, value, size)  # noqa: E731
    syms = sym(0, 0, 0, 0, 0) + sym(1, 0x224EC, 4, 0x11, 20) + sym(10, 0x1D7C0, 0x450, 0x01, 20)
    syms += sym(21, 0x1000, 8, 0x12, 12)
    hsize = 52 if cls == 1 else 64
    sym_off = hsize
    str_off = sym_off + len(syms)
    sh_off = str_off + len(strtab)

    def shdr(sh_type, off, size, link, entsize):
        if cls == 1:
            return struct.pack("<10I", 0, sh_type, 0, 0, off, size, link, 0, 4, entsize)
        return struct.pack("<IIQQQQIIQQ", 0, sh_type, 0, 0, off, size, link, 0, 8, entsize)

    entsize = 16 if cls == 1 else 24
    sections = shdr(0, 0, 0, 0, 0) + shdr(2, sym_off, len(syms), 2, entsize) + shdr(3, str_off, len(strtab), 0, 0)
    data = ehdr(cls, 3, 0, 0, sh_off, 3) + syms + strtab + sections
    got = elfsyms.symbols(lambda off, size: data[off:off + size], ["__curbrk", "main_arena", "absent"])
    assert got == {"__curbrk": (0x224EC, 4), "main_arena": (0x1D7C0, 0x450)}


def test_link_map_of_a_32_bit_process():
    """r_debug.r_map is its second word, and l_addr, l_name, l_next the first, second and
    fourth words of a link_map: 4 bytes each in an i386 process."""
    words = {0x1000 + 4: 0x2000, 0x2000: 0, 0x2004: 0x3000, 0x200C: 0x2100,
             0x2100: 0xF7D8D000, 0x2104: 0x3100, 0x210C: 0}
    names = {0x3000: "", 0x3100: "/lib/i386-linux-gnu/libc.so.6"}
    got = memmaps.link_map_entries(lambda a: words.get(a, 0), names.get, 0x1000, word=4)
    assert got == [(0, ""), (0xF7D8D000, "/lib/i386-linux-gnu/libc.so.6")]
