"""Where the list of mappings comes from, one source per kind of target behind one function."""

import os
import re
from typing import BinaryIO, Dict, List, Optional, Tuple

import gdb

from ..model import elf
from ..model.coremaps import core_mappings
from ..model.residency import ResidentPages
from ..model.regions import Mapping, parse_proc_maps, parse_smaps_rss, smaps_rss_from_chunks
from .errors import UserError
from . import process
from .process import Target, cached


def _read_text(path: str) -> Optional[str]:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _proc_maps_text(proc: str, name: str = "maps") -> Optional[str]:
    """The process's maps, or any live thread's when the main thread has exited (empty maps)."""
    text = _read_text(f"{proc}/{name}")
    if text:
        return text
    try:
        tids = sorted(os.listdir(f"{proc}/task"), key=int)
    except OSError:
        return text
    for tid in tids:
        text = _read_text(f"{proc}/task/{tid}/{name}")
        if text:
            return text
    return text


def live_proc_maps(pid: int) -> List[Mapping]:
    """/proc/PID/maps read now, never cached: for code that runs while the process goes on
    (brkwatch's hooks); [] when it cannot be read."""
    text = _read_text(f"/proc/{pid}/maps")
    return parse_proc_maps(text) if text else []


_INFO_PROC = re.compile(
    r"^\s*(0x[0-9a-fA-F]+)\s+(0x[0-9a-fA-F]+)\s+0x[0-9a-fA-F]+\s+(0x[0-9a-fA-F]+)\s+([rwxps-]{4})?\s*(.*)$"
)


def parse_info_proc_mappings(text: str) -> List[Mapping]:
    out = []
    for line in text.splitlines():
        m = _INFO_PROC.match(line)
        if not m:
            continue
        lo, hi, off = int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16)
        perms = m.group(4) or "r--p"
        out.append(Mapping(lo, hi, perms, off, m.group(5).strip()))
    return out


def _gdb_mappings() -> List[Mapping]:
    try:
        text = gdb.execute("info proc mappings", to_string=True)
    except gdb.error as e:
        raise UserError(f"gdb cannot list this target's mappings ({e})") from None
    return parse_info_proc_mappings(text)


def mappings(target: Target) -> List[Mapping]:
    return cached("mappings", lambda: _mappings(target))


def maps_unreadable(target: Target) -> Optional[str]:
    """Why a local live process's /proc/PID/maps cannot be read (then mappings() are rebuilt
    from its memory and symbols), or None."""
    proc = target.local_proc
    if not proc:
        return None
    from .memmaps import proc_maps_error

    return cached("maps_unreadable", lambda: proc_maps_error(proc))


def _mappings(target: Target) -> List[Mapping]:
    proc = target.local_proc
    if proc:
        text = _proc_maps_text(proc)
        if text:
            return parse_proc_maps(text)
        if maps_unreadable(target):
            from .memmaps import mappings_from_memory

            return mappings_from_memory(target)
        raise UserError(f"cannot read {proc}/maps; is the process still alive?")
    if target.kind == "core":
        maps = _core_file_mappings(target)
        if maps:
            return maps
    if target.kind == "remote":
        try:
            text = remote_file(f"/proc/{target.pid}/maps")
        except UserError:
            text = None  # gdb's own `info proc mappings` reads the same file another way
        if text:
            return parse_proc_maps(text)
    return _gdb_mappings()


def core_file_path() -> Optional[str]:
    """A path that opens the selected inferior's core file.  gdb 17 and later name it; older
    ones only in `info target` text, where a file name may hold quotes, so the name is taken
    from gdb's own open files and only checked against that text, never cut out of it."""
    corefile = getattr(gdb.selected_inferior(), "corefile", None)  # gdb 17 and later
    name = getattr(corefile, "filename", None)
    if name:
        return name
    try:
        text = gdb.execute("info target", to_string=True)
    except gdb.error:
        return None
    return core_path_from_open_files(text) or core_path_from_text(text)


def _is_core_file(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            header = f.read(18)
    except OSError:
        return False
    return elf.is_core_header(header)


def core_path_from_open_files(info_target: str) -> Optional[str]:
    """The core file among gdb's open files that `info target` names (gdb keeps it open)."""
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for fd in fds:
        link = f"/proc/self/fd/{fd}"
        try:
            name = os.readlink(link)
        except OSError:
            continue
        deleted = name.endswith(" (deleted)")  # still readable through gdb's descriptor
        for candidate in (name, name[: -len(" (deleted)")]) if deleted else (name,):
            if f"`{candidate}', file type " in info_target and _is_core_file(link):
                return link if deleted else candidate
    return None


def core_path_from_text(info_target: str) -> Optional[str]:
    """The name `info target` prints between ` and "', file type FORMAT." (quotes allowed)."""
    m = re.search(r"core dump file:\s*`(.*?)', file type [^\n]*\.$", info_target, re.M | re.S)
    if m and _is_core_file(m.group(1)):
        return m.group(1)
    return None


def _core_file_mappings(target: Target) -> Optional[List[Mapping]]:
    path = core_file_path()
    if not path:
        return None
    try:
        with open(path, "rb") as f:

            def read(offset, size):
                f.seek(offset)
                return f.read(size)

            maps = core_mappings(read)
    except OSError:
        return None
    return _perms_from_objects(target, maps) if maps else None


def _perms_from_objects(target: Target, maps: List[Mapping]) -> List[Mapping]:
    """gcore leaves read-only file pages out of the core: take their permissions from the ELF."""
    dumped = {(m.start, m.end) for m in maps}
    out = []
    objects = {}
    for m in maps:
        if m.path and m.offset == 0 and m.path not in objects:
            try:
                objects[m.path] = elf.parse_program_headers(
                    target.memory.read(m.start, 0x1000), m.start, m.path
                )
            except Exception:  # unreadable header: keep the guess
                objects[m.path] = None
    for m in maps:
        obj = objects.get(m.path)
        if obj is not None and m.perms == "r--p":
            seg = next((s for s in obj.segments if (s.start & ~0xFFF) <= m.start < s.end), None)
            if seg is not None:
                perms = (
                    ("r" if seg.flags & elf.PF_R else "-")
                    + ("w" if seg.flags & elf.PF_W else "-")
                    + ("x" if seg.flags & elf.PF_X else "-")
                    + "p"
                )
                if not (seg.flags & elf.PF_W and (m.start, m.end) in dumped):
                    m = Mapping(m.start, m.end, perms, m.offset, m.path, m.inode)
        out.append(m)
    return out


_ARGV_PLAIN = re.compile(r"[A-Za-z0-9/._+,:=@%-]")


def gdb_argv_word(text: str) -> str:
    """`text` as one word of a gdb command that splits its arguments like a shell (libiberty's
    buildargv: `remote get`, `remote put`): every other character escaped with a backslash."""
    return "".join(c if _ARGV_PLAIN.match(c) else "\\" + c for c in text)


def remote_file(path: str) -> str:
    """A file of the remote system, fetched through gdb's `remote get` (gdbserver's vFile).
    A UserError says why it could not be (the names are quoted: TMPDIR may hold a space)."""
    import tempfile

    try:
        with tempfile.TemporaryDirectory(prefix="gdbext-") as d:
            local = os.path.join(d, "f")
            if "\n" in local:  # one gdb command is one line
                raise UserError(f"cannot fetch {path}: the temporary directory {d!r} holds a newline")
            gdb.execute(f"remote get {gdb_argv_word(path)} {gdb_argv_word(local)}", to_string=True)
            with open(local, errors="replace") as f:
                return f.read()
    except (gdb.error, OSError) as e:
        raise UserError(f"cannot fetch {path} from the remote system ({e})") from None


class ResidentSizes(dict):
    """Resident bytes per mapping start (smaps' Rss), and `part(start, end)`: the resident bytes
    of a part of a mapping from the page map (/proc/PID/pagemap), counted as smaps counts Rss,
    or None when the page map cannot be read (another user's process, gdbserver) or cannot
    tell: the view then shares the mapping's figure by size and marks it an estimate.

    A page is resident when its entry's bit 63 ("present") is set, except the shared zero page
    that a read of untouched anonymous memory maps (gdb's own reads do): smaps leaves it out
    of Rss.  With its frame number (root) the zero page is known by it; without (frame numbers
    read as 0), a present anonymous page mapped once (bit 56 "exclusive") or a file page
    (bit 61) is resident, and a present anonymous page mapped more than once (the zero page,
    or a page shared with a fork) leaves the figure unknown."""

    def __init__(self, rss: Dict[int, int], pagemap: Optional[str] = None):
        super().__init__(rss)
        self.pagemap = pagemap
        self._file: Optional[BinaryIO] = None
        self.page = os.sysconf("SC_PAGE_SIZE") if pagemap else 4096

    def _entries(self, first: int, count: int):
        if not self.pagemap:
            return None
        try:
            if self._file is None:
                self._file = open(self.pagemap, "rb")  # noqa: SIM115 (kept open across parts)
            f = self._file
            f.seek(first * 8)
            data = f.read(count * 8)
        except (OSError, OverflowError, ValueError):
            self.pagemap, self._file = None, None
            return None
        if len(data) != count * 8:  # past the user address space ([vsyscall])
            return None
        return memoryview(data).cast("Q")

    def part(self, start: int, end: int) -> Optional[int]:
        if not self.pagemap:
            return None
        if end <= start:
            return 0
        page = self.page
        first, last = start // page, (end - 1) // page
        entries = self._entries(first, last - first + 1)
        if entries is None:
            return None
        zero = _zero_page_pfn(page)
        total = 0
        for i, e in enumerate(entries):
            if not e >> 63:
                continue
            if zero is not None:
                if e & _PFN == zero:
                    continue  # the zero page: smaps does not count it
            elif not (e >> 56 & 1 or e >> 61 & 1):
                return None  # no frame numbers: the zero page or a page shared with a fork
            lo = max(start, (first + i) * page)
            total += min(end, (first + i + 1) * page) - lo
        return total


_PFN = (1 << 55) - 1
_zero_pfn: Dict[int, Optional[int]] = {}


def _zero_page_pfn(page: int) -> Optional[int]:
    """The frame number of the kernel's zero page: what a read of a fresh anonymous page of
    gdb's own maps.  None when frame numbers are hidden (not root) or cannot be read."""
    if page not in _zero_pfn:
        _zero_pfn[page] = None
        try:
            import ctypes
            import mmap

            m = mmap.mmap(-1, page, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            try:
                c = ctypes.c_char.from_buffer(m)
                address = ctypes.addressof(c)
                _ = m[0]  # read, never written: the zero page is mapped
                with open("/proc/self/pagemap", "rb", buffering=0) as f:
                    f.seek(address // page * 8)
                    (entry,) = memoryview(f.read(8)).cast("Q")
                del c
            finally:
                m.close()
            if entry >> 63 and entry & _PFN:
                _zero_pfn[page] = entry & _PFN
        except (OSError, ValueError, TypeError, BufferError):
            pass
    return _zero_pfn[page]


def resident_sizes(target: Target) -> Tuple[Optional[Dict[int, int]], Optional[str]]:
    """(resident bytes per mapping start, or None; why they are unknown, or None).  A live
    process's, local (a ResidentSizes, exact for parts of mappings when the page map is
    readable) or remote through gdbserver (whole mappings only); a core file records none."""
    proc = target.local_proc
    if proc:
        found = _local_smaps_rss(proc)
        if found is None:
            return None, f"cannot read {proc}/smaps"
        rss, smaps = found
        return ResidentSizes(rss, smaps[: -len("smaps")] + "pagemap"), None
    if target.kind == "remote":
        try:
            text, why = remote_file(f"/proc/{target.pid}/smaps"), None
        except UserError as e:
            text, why = None, str(e)
        return (parse_smaps_rss(text), None) if text else (None, why)
    return None, None


def _file_blocks(path: str, size: int = 1 << 20):
    with open(path, "rb") as f:
        while True:
            block = f.read(size)
            if not block:
                return
            yield block


def _local_smaps_rss(proc: str) -> Optional[Tuple[Dict[int, int], str]]:
    """Resident bytes per mapping from the process's smaps, or a live thread's when the main
    thread has exited (its smaps is empty); read in blocks, never as one 200 MB string.  With
    the path of the smaps read (its pagemap is beside it)."""
    try:
        tids = sorted(os.listdir(f"{proc}/task"), key=int)
    except OSError:
        tids = []
    for path in [f"{proc}/smaps"] + [f"{proc}/task/{t}/smaps" for t in tids]:
        try:
            rss = smaps_rss_from_chunks(_file_blocks(path))
        except OSError:
            continue
        if rss:
            return rss, path
    return None


def resident_pages(target: Target, ranges) -> Optional[ResidentPages]:
    """Which pages of each (start, end) range are resident, from the live local process's page
    map, one read per range, counted as smaps counts Rss (the zero page left out, as
    `ResidentSizes.part` does); None on a core, a remote target or an unreadable page map."""
    proc = target.local_proc
    if not proc:
        return None
    page = os.sysconf("SC_PAGE_SIZE")
    zero = _zero_page_pfn(page)
    out = ResidentPages(page)
    try:
        with open(f"{proc}/pagemap", "rb") as f:
            for start, end in sorted(set(ranges)):
                if end <= start:
                    continue
                first, last = start // page, (end - 1) // page
                f.seek(first * 8)
                data = f.read((last - first + 1) * 8)
                if len(data) != (last - first + 1) * 8:
                    return None
                flags = bytearray(last - first + 1)
                for i, e in enumerate(memoryview(data).cast("Q")):
                    if not e >> 63:
                        continue
                    if zero is not None:
                        flags[i] = e & _PFN != zero
                    else:
                        flags[i] = bool(e >> 56 & 1 or e >> 61 & 1)
                out.add(first * page, bytes(flags))
    except (OSError, OverflowError, ValueError):
        return None
    return out


def stack_gap(target: Target) -> Optional[Tuple[int, int]]:
    """[lo, hi) of the unmapped addresses right below the [stack] mapping (hi: its start), or
    None when there is none or the mappings do not say: reading there grows the stack."""
    try:
        maps = sorted(mappings(target), key=lambda m: m.start)
    except UserError:
        return None
    for k, m in enumerate(maps):
        if m.path == "[stack]":
            lo = maps[k - 1].end if k else 0
            return (lo, m.start) if lo < m.start else None
    return None


process.STACK_GAP = stack_gap
