"""The few fields of an ELF file header and of its tables that gdbext reads, for both classes
it meets: 64-bit (x86-64) and 32-bit (i386) little-endian objects and cores. One place knows
the two layouts; the parsers (elf.py, coremaps.py, memmaps.py, elfsyms.py) take records."""

import struct
from dataclasses import dataclass
from typing import Optional, Tuple

ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB = 1


@dataclass(frozen=True)
class ElfHeader:
    word: int  # 8 for ELFCLASS64, 4 for ELFCLASS32: also the size of its addresses
    e_type: int
    phoff: int
    phentsize: int
    phnum: int
    shoff: int
    shentsize: int
    shnum: int

    @property
    def phdr_size(self) -> int:
        """The smallest program header entry of this class."""
        return 56 if self.word == 8 else 32

    @property
    def shdr_size(self) -> int:
        return 64 if self.word == 8 else 40

    @property
    def sym_size(self) -> int:
        return 24 if self.word == 8 else 16


def elf_header(head: bytes) -> Optional[ElfHeader]:
    """The header of a little-endian ELF file of either class from its first bytes (64 are
    enough), or None."""
    if len(head) < 52 or head[:4] != b"\x7fELF" or head[5] != ELFDATA2LSB:
        return None
    if head[4] == ELFCLASS64 and len(head) >= 64:
        (e_type,) = struct.unpack_from("<H", head, 0x10)
        phoff, shoff = struct.unpack_from("<QQ", head, 0x20)
        phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", head, 0x36)
        return ElfHeader(8, e_type, phoff, phentsize, phnum, shoff, shentsize, shnum)
    if head[4] == ELFCLASS32:
        (e_type,) = struct.unpack_from("<H", head, 0x10)
        phoff, shoff = struct.unpack_from("<II", head, 0x1C)
        phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", head, 0x2A)
        return ElfHeader(4, e_type, phoff, phentsize, phnum, shoff, shentsize, shnum)
    return None


def program_header(data: bytes, pos: int, word: int) -> Tuple[int, int, int, int, int, int]:
    """(p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz) of the entry at `pos`."""
    if word == 8:
        p_type, p_flags, p_offset, p_vaddr, _, p_filesz, p_memsz, _ = struct.unpack_from(
            "<IIQQQQQQ", data, pos
        )
        return p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz
    p_type, p_offset, p_vaddr, _, p_filesz, p_memsz, p_flags, _ = struct.unpack_from("<8I", data, pos)
    return p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz


def section_header(data: bytes, pos: int, word: int) -> Tuple[int, int, int, int, int]:
    """(sh_type, sh_offset, sh_size, sh_link, sh_entsize) of the entry at `pos`."""
    if word == 8:
        _, sh_type, _, _, sh_offset, sh_size, sh_link, _, _, sh_entsize = struct.unpack_from(
            "<IIQQQQIIQQ", data, pos
        )
    else:
        _, sh_type, _, _, sh_offset, sh_size, sh_link, _, _, sh_entsize = struct.unpack_from(
            "<IIIIIIIIII", data, pos
        )
    return sh_type, sh_offset, sh_size, sh_link, sh_entsize


def symbol(data: bytes, pos: int, word: int) -> Tuple[int, int, int, int, int]:
    """(st_name, st_info, st_shndx, st_value, st_size) of the symbol at `pos`."""
    if word == 8:
        st_name, st_info, _, st_shndx, st_value, st_size = struct.unpack_from("<IBBHQQ", data, pos)
    else:
        st_name, st_value, st_size, st_info, _, st_shndx = struct.unpack_from("<IIIBBH", data, pos)
    return st_name, st_info, st_shndx, st_value, st_size
