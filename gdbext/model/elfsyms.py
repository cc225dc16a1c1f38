"""Symbol values from an ELF file's .symtab and .dynsym, reading only what it needs.

gdb's own look-up of a global variable defined in two objects (ld.so and libc both define
`__curbrk`) may answer with the wrong object's copy; reading the object's own table does not.
"""

from typing import Callable, Dict, Iterable, Optional, Tuple

from .elfheader import elf_header, section_header, symbol

SHT_SYMTAB = 2
SHT_DYNSYM = 11
STT_OBJECT, STT_FUNC, STT_FILE = 1, 2, 4
MAX_TABLE = 64 << 20

Reader = Callable[[int, int], bytes]  # (file offset, size) -> bytes


def symbols(read: Reader, wanted: Iterable[str], source: Optional[str] = None) -> Dict[str, Tuple[int, int]]:
    """{name: (st_value, st_size)} for the wanted names defined in the file (a little-endian
    ELF, 64-bit or 32-bit).

    .symtab first (it has local symbols too), then .dynsym; the first definition wins, except
    that with `source` (a file name such as "malloc.c") a local definition listed under that
    source file's STT_FILE entry wins over the others: a static program links its own objects
    before libc's, and may define a variable of the same name as a static in libc.
    """
    wanted = set(wanted)
    out: Dict[str, Tuple[int, int]] = {}
    h = elf_header(read(0, 64))
    if h is None or h.shoff == 0 or h.shentsize < h.shdr_size or not 0 < h.shnum < 4096:
        return out
    table = read(h.shoff, h.shentsize * h.shnum)
    if len(table) < h.shentsize * h.shnum:
        return out
    sections = [section_header(table, i * h.shentsize, h.word) for i in range(h.shnum)]
    for kind in (SHT_SYMTAB, SHT_DYNSYM):
        for sh_type, off, size, link, entsize in sections:
            if sh_type != kind or not 0 <= link < len(sections) or size > MAX_TABLE:
                continue
            entsize = max(entsize, h.sym_size)
            strtab = sections[link]
            if strtab[2] > MAX_TABLE:
                continue
            syms = read(off, size)
            strs = read(strtab[1], strtab[2])
            _scan(syms, strs, entsize, h.word, wanted, out, source)
        if wanted <= set(out):
            break
    return out


def _scan(syms: bytes, strs: bytes, entsize: int, word: int, wanted, out, source: Optional[str] = None):
    current_file, preferred = None, {}
    for pos in range(0, len(syms) - entsize + 1, entsize):
        st_name, st_info, st_shndx, st_value, st_size = symbol(syms, pos, word)
        if st_name >= len(strs):
            continue
        kind = st_info & 0xF
        if kind == STT_FILE:
            current_file = _name_at(strs, st_name) if source else None
            continue
        if st_shndx == 0 or kind not in (STT_OBJECT, STT_FUNC):
            continue
        name = _name_at(strs, st_name)
        if name not in wanted:
            continue
        if source and st_info >> 4 == 0 and current_file == source and name not in preferred:
            preferred[name] = (st_value, st_size)
        if name not in out:
            out[name] = (st_value, st_size)
    out.update(preferred)


def _name_at(strs: bytes, offset: int) -> str:
    end = strs.find(b"\0", offset)
    return strs[offset : end if end >= 0 else len(strs)].decode("ascii", "replace")


def file_reader(path: str) -> Optional[Reader]:
    """A reader over a file on this machine, or None when it cannot be opened."""
    try:
        f = open(path, "rb")  # noqa: SIM115 (kept open for the reader; closed by read.close)
    except OSError:
        return None

    def read(offset: int, size: int) -> bytes:
        f.seek(offset)
        return f.read(size)

    read.close = f.close  # type: ignore[attr-defined]
    return read
