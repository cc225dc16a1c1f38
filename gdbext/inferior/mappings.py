"""Where the list of mappings comes from, one source per kind of target behind one function."""

import os
import re
from typing import Dict, List, Optional, Tuple

import gdb

from ..model import elf
from ..model.coremaps import core_mappings
from ..model.regions import Mapping, parse_proc_maps, parse_smaps_rss, smaps_rss_from_chunks
from .errors import UserError
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


def resident_sizes(target: Target) -> Tuple[Optional[Dict[int, int]], Optional[str]]:
    """(resident bytes per mapping start, or None; why they are unknown, or None).  A live
    process's, local or remote through gdbserver; a core file records none."""
    proc = target.local_proc
    if proc:
        rss = _local_smaps_rss(proc)
        return (rss, None) if rss is not None else (None, f"cannot read {proc}/smaps")
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


def _local_smaps_rss(proc: str) -> Optional[Dict[int, int]]:
    """Resident bytes per mapping from the process's smaps, or a live thread's when the main
    thread has exited (its smaps is empty); read in blocks, never as one 200 MB string."""
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
            return rss
    return None
