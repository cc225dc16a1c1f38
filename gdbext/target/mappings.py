"""Where the list of mappings comes from, one source per kind of target behind one function."""

import os
import re
from typing import Dict, List, Optional

import gdb

from ..model.regions import Mapping, parse_proc_maps, parse_smaps_rss
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
    return _gdb_mappings()


def resident_bytes(target: Target) -> Optional[Dict[int, int]]:
    """Resident bytes per mapping start, for a local live process only."""
    proc = target.local_proc
    if not proc:
        return None
    text = _proc_maps_text(proc, "smaps")
    return parse_smaps_rss(text) if text else None
