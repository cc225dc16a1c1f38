"""addrinfo and annotate: one line that says what an address is — its region and owner, the
nearest ELF symbol, the malloc chunk and its state (and whose tcache), the thread and frame
whose stack holds it — and a telescope of words, each value with that line.

The facts come from the models the tables use (regions as vmmap classifies them, the heap
model heapchunks walks, the frames gdb unwinds); this view only words them."""

from typing import Any, Iterator, List, NamedTuple, Optional, Tuple

from ..render import fmt
from ..render.table import Table
from . import Item, Line
from .heap import STATE_TOKENS, arena_name


class AddressFacts(NamedTuple):
    """What is known about one address; any part may be None."""

    address: int
    region: Any  # model.regions.Region
    symbol: Optional[Tuple[str, str, int, str]]  # (object file name, symbol, offset, table)
    heap: Any  # the heap view whose state holds the chunks, or None
    frame: Optional[Tuple[int, str, int]]  # (level, function, offset from the CFA)


def chunk_of(heap, address: int):
    """(chunk, arena text, tcache owner) of the chunk that holds the address, or None."""
    if heap is None:
        return None
    state = heap.state
    c = state.chunk_at(address)
    if c is None:
        return None
    arena = state.arena_of(c.arena) if c.arena is not None else None
    owner = None
    if c.bin and c.bin.startswith("tcache"):
        owner = next(
            (t.label for t in state.tcache.values() if any(c.address in b.chunks for b in t.bins)), None
        )
    return c, (arena_name(heap, arena) if arena is not None else None), owner


def pieces(f: AddressFacts) -> Line:
    """The one line, as (text, token) pieces: what each part found, joined by '; '."""
    out: Line = []

    def part(text: str, token=None):
        if out:
            out.append(("; ", None))
        out.append((text, token))

    r = f.region
    if r is None:
        part("not mapped", "warning")
    else:
        part(r.describe() + f" [{r.cls}]", r.cls)
    if f.symbol is not None:
        obj, name, off, table = f.symbol
        part(f"{name}+{off:#x} in {obj}" + ("" if table == ".symtab" else " (from .dynsym)"), "function")
    got = chunk_of(f.heap, f.address)
    if got is not None:
        c, arena, owner = got
        L = f.heap.layout
        user = c.user_address(L)
        where = (
            f"{f.address - user} bytes into its user data"
            if f.address >= user
            else f"in its header ({f.address - c.address} bytes in)"
        )
        state = c.state_name + (f" in {c.bin}" if c.bin else "")
        part(
            f"chunk {fmt.address(c.address)} size {c.size:#x} {state}"
            + (f" of {arena}" if arena else "")
            + (f" (the tcache of {owner})" if owner is not None and str(owner) not in (c.bin or "") else "")
            + f", {where}",
            STATE_TOKENS.get(c.state_name),
        )
    if f.frame is not None:
        level, func, off = f.frame
        sign = "-" if off < 0 else "+"
        part(f"frame #{level} {func}, CFA{sign}{abs(off):#x}", "function")
    return out


def text(f: AddressFacts) -> str:
    return "".join(t for t, _ in pieces(f))


def as_dict(f: AddressFacts) -> dict:
    r = f.region
    d: dict = {"address": f.address, "text": text(f)}
    d["region"] = (
        None
        if r is None
        else {
            "start": r.start,
            "end": r.end,
            "kind": r.kind,
            "class": r.cls,
            "path": r.path or None,
            "thread": r.thread,
        }
    )
    d["symbol"] = (
        None
        if f.symbol is None
        else {"object": f.symbol[0], "name": f.symbol[1], "offset": f.symbol[2], "table": f.symbol[3]}
    )
    got = chunk_of(f.heap, f.address)
    if got is None:
        d["chunk"] = None
    else:
        c, arena, owner = got
        d["chunk"] = {
            "address": c.address,
            "size": c.size,
            "state": c.state_name,
            "bin": c.bin,
            "user_address": c.user_address(f.heap.layout),
            "arena": c.arena,
            "tcache_of": owner,
        }
    d["frame"] = (
        None
        if f.frame is None
        else {
            "thread": r.thread if r is not None else None,
            "level": f.frame[0],
            "function": f.frame[1],
            "cfa_offset": f.frame[2],
        }
    )
    return d


def line_items(f: AddressFacts) -> Iterator[Item]:
    yield [(fmt.address(f.address), "address"), (": ", None)] + pieces(f)


def annotate_items(rows: List[Tuple[int, Optional[int], Optional[AddressFacts]]]) -> Iterator[Item]:
    """One row per word: its address, its value (or why not), what the value points to."""
    t = Table(["address", "value", "points to"], "lll", cut=("points to",), addresses=("address",))
    for addr, value, facts in rows:
        if value is None:
            t.add((fmt.address(addr), "address"), "unreadable", "")
            continue
        what: list = pieces(facts) if facts is not None and facts.region is not None else [("", None)]
        t.add((fmt.address(addr), "address"), (fmt.address(value), "address"), *_joined(what))
    yield t


def _joined(line: Line) -> list:
    """A cell as one (text, token) piece: the first coloured part's token, the text whole."""
    token = next((tok for _, tok in line if tok), None)
    return [("".join(t for t, _ in line), token)]
