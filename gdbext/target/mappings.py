"""Where the list of mappings comes from, one source per kind of target behind one function."""

import os
import re
from typing import Dict, List, Optional

import gdb

from ..model import elf
from ..model.coremaps import core_mappings
from ..model.regions import Mapping, parse_proc_maps, parse_smaps_rss, smaps_rss_from_chunks
from .errors import UserError
from .process import Target, cached


def _read_text(path: str) -> Optional[str]:
    try:
        with open(path, "r", errors="replace") as f:
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


_INFO_PROC = re.compile(
    r"^\s*(0x[0-9a-fA-F]+)\s+(0x[0-9a-fA-F]+)\s+0x[0-9a-fA-F]+\s+(0x[0-9a-fA-F]+)\s+([rwxps-]{4})?\s*(.*)$")


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


def _mappings(target: Target) -> List[Mapping]:
    proc = target.local_proc
    if proc:
        text = _proc_maps_text(proc)
        if text:
            return parse_proc_maps(text)
        raise UserError(f"cannot read {proc}/maps; is the process still alive?")
    if target.kind == "core":
        maps = _core_file_mappings(target)
        if maps:
            return maps
    if target.kind == "remote":
        text = remote_file(f"/proc/{target.pid}/maps")
        if text:
            return parse_proc_maps(text)
    return _gdb_mappings()


def core_file_path() -> Optional[str]:
    try:
        text = gdb.execute("info target", to_string=True)
    except gdb.error:
        return None
    m = re.search(r"core dump file:\s*`([^']+)'", text)
    return m.group(1) if m else None


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
                objects[m.path] = elf.parse_program_headers(target.memory.read(m.start, 0x1000), m.start, m.path)
            except Exception:  # unreadable header: keep the guess
                objects[m.path] = None
    for m in maps:
        obj = objects.get(m.path)
        if obj is not None and m.perms == "r--p":
            seg = next((s for s in obj.segments if (s.start & ~0xFFF) <= m.start < s.end), None)
            if seg is not None:
                perms = ("r" if seg.flags & elf.PF_R else "-") + ("w" if seg.flags & elf.PF_W else "-") + \
                        ("x" if seg.flags & elf.PF_X else "-") + "p"
                if not (seg.flags & elf.PF_W and (m.start, m.end) in dumped):
                    m = Mapping(m.start, m.end, perms, m.offset, m.path, m.inode)
        out.append(m)
    return out


def remote_file(path: str) -> Optional[str]:
    """A file of the remote system, fetched through gdb's `remote get` (gdbserver's vFile)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        local = os.path.join(d, "f")
        try:
            gdb.execute(f"remote get {path} {local}", to_string=True)
            with open(local, "r", errors="replace") as f:
                return f.read()
        except (gdb.error, OSError):
            return None


def resident_bytes(target: Target) -> Optional[Dict[int, int]]:
    """Resident bytes per mapping start, for a live process (local, or remote through gdbserver)."""
    proc = target.local_proc
    if proc:
        return _local_smaps_rss(proc)
    if target.kind == "remote":
        text = remote_file(f"/proc/{target.pid}/smaps")
    else:
        return None
    return parse_smaps_rss(text) if text else None


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
