"""Mappings and the classifier that names each one the way a C programmer thinks of memory."""

import re
from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class Mapping:
    """One line of /proc/PID/maps (or its equivalent for cores and remote targets)."""

    start: int
    end: int
    perms: str  # "rwxp" style, 4 characters
    offset: int = 0
    path: str = ""  # "" for anonymous; "[heap]", "[stack]", "[vdso]"... kept verbatim
    inode: int = 0

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def readable(self) -> bool:
        return self.perms[:1] == "r"

    @property
    def writable(self) -> bool:
        return self.perms[1:2] == "w"

    @property
    def executable(self) -> bool:
        return self.perms[2:3] == "x"

    @property
    def no_access(self) -> bool:
        return self.perms[:3] == "---"

    @property
    def anonymous(self) -> bool:
        return self.path == "" or self.path.startswith("[anon")

    def contains(self, address: int) -> bool:
        return self.start <= address < self.end


def maps_path(path: str) -> str:
    """A path as /proc/PID/maps writes it (a newline as \\012; gcore copies that into a core's
    file note) back to the file's name; its control characters are escaped when printed."""
    return path.replace("\\012", "\n") if "\\012" in path else path


def parse_proc_maps(text: str) -> "list[Mapping]":
    """Lines of /proc/PID/maps; paths may hold spaces and end in ' (deleted)'."""
    out = []
    for line in text.split("\n"):  # not splitlines(): a path may hold \x1c or \x85
        parts = line.split(None, 5)
        if len(parts) < 5 or "-" not in parts[0]:
            continue
        try:
            lo, hi = (int(x, 16) for x in parts[0].split("-", 1))
            offset = int(parts[2], 16)
            inode = int(parts[4])
        except ValueError:
            continue
        path = maps_path(parts[5].strip() if len(parts) > 5 else "")
        out.append(Mapping(lo, hi, parts[1][:4], offset, path, inode))
    return out


# A mapping's first line starts with its lowercase hex start; smaps' field names start upper
# case.  Anchored on the newline before each line, which the regex engine finds at C speed.
_SMAPS_LINE = re.compile(rb"\n(?:([0-9a-f]+)-[0-9a-f]+ |Rss:[ \t]+(\d+))")


def parse_smaps_rss(text: str) -> "dict[int, int]":
    """Start address -> resident bytes, from /proc/PID/smaps text."""
    return smaps_rss_from_chunks([text.encode("ascii", "replace")])


def smaps_rss_from_chunks(chunks) -> "dict[int, int]":
    """Start address -> resident bytes, from /proc/PID/smaps given as successive byte blocks,
    so that 200k mappings (200 MB of smaps) are never held, split or decoded whole."""
    rss, current, carry = {}, None, b"\n"
    for chunk in chunks:
        data = carry + chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data
            continue
        carry = data[cut:]
        for m in _SMAPS_LINE.finditer(data, 0, cut + 1):
            start, kib = m.groups()
            if start is not None:
                current = int(start, 16)
            elif current is not None:
                rss[current] = int(kib) * 1024
    return rss


KINDS = (
    "code",
    "rodata",
    "data",
    "bss",
    "heap",
    "arena-heap",
    "arena-reserved",
    "mmap-chunk",
    "stack",
    "thread-stack",
    "guard",
    "anon",
    "file",
    "vdso",
    "vvar",
    "vsyscall",
)

CLASS_OF = {
    "code": "static",
    "rodata": "static",
    "data": "static",
    "bss": "static",
    "stack": "automatic",
    "thread-stack": "automatic",
    "heap": "dynamic",
    "arena-heap": "dynamic",
    "mmap-chunk": "dynamic",
    "anon": "dynamic",
    "guard": "reserved",
    "arena-reserved": "reserved",
    "vdso": "kernel",
    "vvar": "kernel",
    "vsyscall": "kernel",
    "file": "file",
}
CLASSES = ("static", "automatic", "dynamic", "reserved", "kernel", "file")


@dataclass
class Region:
    """A mapping, or the part of one, with the one kind a programmer would give it."""

    start: int
    end: int
    mapping: Mapping
    kind: str
    label: str = ""  # what to show in place of, or beside, the path
    thread: Optional[int] = None
    tid: Optional[int] = None

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def cls(self) -> str:
        return CLASS_OF[self.kind]

    @property
    def perms(self) -> str:
        return self.mapping.perms

    @property
    def path(self) -> str:
        return self.mapping.path

    @property
    def offset(self) -> int:
        return self.mapping.offset + (self.start - self.mapping.start)

    def contains(self, address: int) -> bool:
        return self.start <= address < self.end

    def describe(self) -> str:
        """'thread-stack of thread 3', 'data of /usr/lib/libc.so.6'."""
        if self.thread is not None:
            return f"{self.kind} of thread {self.thread}"
        if self.mapping.path and not self.mapping.path.startswith("["):
            return f"{self.kind} of {self.mapping.path}"
        if self.label.startswith("/"):
            return f"{self.kind} of {self.label}"  # an object's bss past its file-backed pages
        return self.kind


@dataclass(frozen=True)
class Claim:
    """A fact found elsewhere (a stack, an arena heap, a segment) naming a range of memory."""

    start: int
    end: int
    kind: str
    label: str = ""
    thread: Optional[int] = None
    tid: Optional[int] = None


@dataclass
class Facts:
    """What the target found out; each list holds Claims, strongest first."""

    claims: list = field(default_factory=list)  # stacks, guards, arena heaps, mmapped chunks
    objects: list = field(default_factory=list)  # elf.LoadedObject per loaded file
    brk: Optional[tuple] = None  # (start_brk, brk) of the main heap, when known
    main_thread: Optional[int] = None  # gdb number of the thread that owns [stack]
    main_tid: Optional[int] = None


_SPECIAL = {"[heap]": "heap", "[stack]": "stack", "[vdso]": "vdso", "[vsyscall]": "vsyscall"}


def is_memfd(path: str) -> bool:
    """A mapping of a memfd_create file: /proc/PID/maps names it '/memfd:NAME (deleted)'."""
    return path.startswith("/memfd:")


def _default_kind(m: Mapping, object_paths: set) -> str:
    path = m.path
    if path in _SPECIAL:
        return _SPECIAL[path]
    if path.startswith("[vvar"):
        return "vvar"
    if path.startswith("[stack"):
        return "stack"
    if m.anonymous or path.startswith("["):
        return "anon"
    if is_memfd(path):  # memory a program filled itself (a JIT), not an object file's code
        return "file"
    if path in object_paths or m.executable:
        # An ELF object whose headers could not be read: judge by permissions.
        if m.executable:
            return "code"
        if m.writable:
            return "data"
        return "rodata"
    return "file"


def classify(mappings, facts: Optional[Facts] = None) -> "list[Region]":
    """Every mapping cut into regions by the claims that cover it; the rest by its own look."""
    from .elf import pieces

    facts = facts or Facts()
    mappings = sorted(mappings, key=lambda m: m.start)
    by_path: dict = {}
    for obj in facts.objects:
        by_path.setdefault(obj.path, []).extend(Claim(s, e, k, lbl) for s, e, k, lbl in pieces(obj))
    object_paths = {m.path for m in mappings if m.executable and not m.anonymous}
    object_paths.update(by_path)
    # bss past a segment's last page is anonymous: let the object's claims reach it too.
    anon_claims = [
        Claim(c.start, c.end, c.kind, path) for path, cs in by_path.items() for c in cs if c.kind == "bss"
    ]
    claims = sorted(facts.claims, key=lambda c: c.start)
    if facts.brk and facts.brk[1] > facts.brk[0]:
        claims.append(Claim(facts.brk[0], (facts.brk[1] + 0xFFF) & ~0xFFF, "heap"))

    regions = []
    general, every = len(claims), claims + anon_claims
    overlapping = _overlap_sweep(every)
    for m in mappings:
        default = _default_kind(m, object_paths)
        near = overlapping(m)  # indices in list order: the general claims, then anon_claims
        own = []
        if m.path == "[heap]":  # a thread stack the program took from malloc
            own = [c for c in claims if c.kind == "thread-stack" and c.start < m.end and c.end > m.start]
        elif m.path in _SPECIAL or m.path.startswith("[v"):
            own = []
        elif m.anonymous:
            own = [every[i] for i in near]
        else:
            own = [every[i] for i in near if i < general and every[i].kind in ("guard",)]
            own += [c for c in by_path.get(m.path, ()) if c.start < m.end and c.end > m.start]
        regions.extend(_cut(m, own, default, facts))
    return regions


def _overlap_sweep(claims):
    """A function of a mapping giving the indices (ascending) of the claims that overlap it,
    for mappings asked in address order: a sweep keeps only the claims still open, so
    classifying costs mappings + claims, not mappings * claims (200k mappings, 100k chunks)."""
    order = sorted(range(len(claims)), key=lambda i: claims[i].start)
    state = {"next": 0, "open": []}

    def overlapping(m: Mapping):
        j, still = state["next"], [i for i in state["open"] if claims[i].end > m.start]
        while j < len(order) and claims[order[j]].start < m.end:
            if claims[order[j]].end > m.start:
                still.append(order[j])
            j += 1
        state["next"], state["open"] = j, still
        return sorted(still)

    return overlapping


def _cut(m: Mapping, claims, default: str, facts: Facts):
    """Split one mapping at its claims; where claims overlap the narrowest wins (a thread's stack
    inside the mmapped chunk it was given), then the earlier."""
    out: list = []
    thread = tid = None
    if default == "stack":
        thread, tid = facts.main_thread, facts.main_tid
    if not claims:  # most mappings: one region, without the cutting
        return [Region(m.start, m.end, m, default, "", thread, tid)]
    edges = sorted({m.start, m.end} | {max(m.start, min(m.end, x)) for c in claims for x in (c.start, c.end)})
    for lo, hi in zip(edges, edges[1:]):
        if lo >= hi:
            continue
        c = min(
            (c for c in claims if c.start <= lo and hi <= c.end), key=lambda c: c.end - c.start, default=None
        )
        if c is None:
            piece = Region(lo, hi, m, default, "", thread, tid)
        else:
            piece = Region(lo, hi, m, c.kind, c.label, c.thread, c.tid)
        prev = out[-1] if out else None
        if prev and (prev.kind, prev.label, prev.thread) == (piece.kind, piece.label, piece.thread):
            prev.end = hi  # a claim cut by another edge stays one region
        else:
            out.append(piece)
    return out


def region_at(regions, address: int) -> Optional[Region]:
    from bisect import bisect_right

    starts = [r.start for r in regions]
    i = bisect_right(starts, address) - 1
    if i >= 0 and regions[i].contains(address):
        return regions[i]
    return None


def neighbours(regions, address: int):
    """The regions just below and just above an address that none holds."""
    below = max((r for r in regions if r.end <= address), key=lambda r: r.end, default=None)
    above = min((r for r in regions if r.start > address), key=lambda r: r.start, default=None)
    return below, above
