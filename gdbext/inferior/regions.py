"""Gathers what the classifier needs from the target and returns classified regions.

One place computes regions so that vmmap, threadstacks and the heap commands agree.
"""

import re
from typing import List

import gdb

from ..model import elf
from ..model.memory import MemoryReadError
from ..model.regions import Claim, Facts, Region, classify
from .brk import program_break
from .heap import malloc_claims_from_model
from .mappings import mappings
from .process import Target, cached
from .stacks import stacks_and_unsplit


def loaded_objects(target: Target, maps) -> list:
    objs, seen = [], set()
    for m in maps:
        if m.anonymous or m.path.startswith("[") or m.offset != 0 or m.path in seen:
            continue
        seen.add(m.path)
        try:
            header = target.memory.read(m.start, min(m.size, 0x1000))
        except MemoryReadError:
            continue
        obj = elf.parse_program_headers(header, m.start, m.path)
        if obj is not None:
            objs.append(obj)
    return objs


def regions(target: Target) -> List[Region]:
    return cached("regions", lambda: _regions(target))


def _regions(target: Target) -> List[Region]:
    maps = mappings(target)
    facts = Facts()
    facts.objects = loaded_objects(target, maps)
    facts.brk = program_break(target, maps)
    stacks, unsplit = stacks_and_unsplit(target, maps)
    for s in stacks:
        facts.claims.extend(s.claims())
        if s.main:
            facts.main_thread, facts.main_tid = s.thread, s.tid
    for u in unsplit:
        facts.claims.extend(u.claims())
    facts.claims.extend(malloc_claims_from_model(target))
    facts.claims.extend(kernel_claims(maps))
    return classify(maps, facts)


VSYSCALL = 0xFFFFFFFFFF600000


def kernel_claims(maps) -> list:
    """The vDSO (from the auxiliary vector) and vsyscall page, which a core file leaves unnamed."""
    if any(m.path == "[vdso]" for m in maps):
        return []
    out = []
    try:
        text = gdb.execute("info auxv", to_string=True)
        m = re.search(r"AT_SYSINFO_EHDR\s.*?(0x[0-9a-f]+)\s*$", text, re.M)
        vdso = int(m.group(1), 16) if m else None
    except gdb.error:
        vdso = None
    for mp in maps:
        if vdso is not None and mp.start == vdso:
            out.append(Claim(mp.start, mp.end, "vdso"))
        elif mp.start == VSYSCALL:
            out.append(Claim(mp.start, mp.end, "vsyscall"))
    return out
