"""heapchunks' document and table: every chunk of the chosen arenas, heap by heap, then the
mmapped chunks, the footers and glibc's own counts.

The unfiltered JSON and the uncoloured, unfiltered table are hand-made fast paths (a million
chunks make 150 MB of JSON): rows filled from templates at C speed, a batch at a time, from the
model's arrays; they yield raw text in pieces, so the command writes them as they come."""

import json
import sys
from array import array
from bisect import bisect_left
from itertools import compress
from typing import Iterator, List, Optional, Sequence, Set

from ..model import wordmath
from ..model.progress import progress
from ..model.ptmalloc.chunks import STATES
from ..render import fmt, jsonout
from ..render.table import Table
from . import Item, Line, line
from .heap import (
    STATE_TOKENS,
    arena_listing_text,
    arena_name,
    flag_letters,
    header_items,
    preview,
    read_or_none,
)
from .problems import problem_items, problems_json

PREVIEW = 16
BATCH = 1 << 11  # chunks per piece of output (gdb.write is slower on pieces of megabytes)
_NO_PREVIEW = bytes(
    int(c < len(STATES) and STATES[c] in ("mmapped", "corrupt", "fencepost")) for c in range(256)
)  # the table shows no data for these
_PRINTABLE = bytes(c if 32 <= c < 127 else ord(".") for c in range(256))
_FLAG_LETTERS = [flag_letters(f) for f in range(8)]
_IN_BIN = bytes(
    int(0 < c < len(STATES) and STATES[c] in ("tcache", "fastbin", "unsorted", "smallbin", "largebin"))
    for c in range(256)
)  # state code -> 1 for the states of chunks in a bin
_MMAPPED = STATES.index("mmapped")
_SHIFT3 = bytes((c << 3) & 0xFF for c in range(256))
_AND7 = bytes(c & 7 for c in range(256))


def _chunk_keys(states, raws) -> bytes:
    """Each chunk's template key, state code << 3 | its flag bits, as bytes: the flag bits from
    the low byte of each size field, the two joined by one integer or (wordmath)."""
    low = wordmath.low_bytes(raws).translate(_AND7)
    return wordmath.or_bytes(bytes(states).translate(_SHIFT3), low)


class ChunkFilter:
    """Which chunks to show: states, a size range (bytes), at most `limit` of them."""

    def __init__(
        self,
        states: Optional[Set[str]] = None,
        min_size: Optional[int] = None,
        max_size: Optional[int] = None,
        limit: Optional[int] = None,
    ):
        self.states = set(states) if states else None
        self.codes = {STATES.index(s) for s in self.states} if self.states else None
        self.min = min_size
        self.max = max_size
        self.limit = limit

    @property
    def everything(self) -> bool:
        return self.codes is None and self.min is None and self.max is None and self.limit is None

    def keep(self, state_code: int, size: int) -> bool:
        if self.codes is not None and state_code not in self.codes:
            return False
        if self.min is not None and size < self.min:
            return False
        return self.max is None or size <= self.max


def mallinfo2_wrapped(state) -> List[str]:
    from ..model.ptmalloc.checks import mallinfo2_wrapped as wrapped

    return wrapped(state)


def _head(heap, target_doc: dict, mm: list) -> str:
    return jsonout.document(
        "heapchunks",
        target_doc,
        heap=heap.header(),
        mmapped=mm,
        mallinfo2_wrapped=mallinfo2_wrapped(heap.state),
        problems=problems_json(heap.state.problems),
        mallinfo2=heap.state.mallinfo2()._asdict(),
    )


# ---- JSON ----


def document(heap, target_doc: dict, arenas, flt: ChunkFilter, with_mmapped: bool) -> Iterator[str]:
    """The --json document, in pieces to write one after the other."""
    if flt.everything:
        return document_all(heap, target_doc, arenas, with_mmapped)
    return iter([document_filtered(heap, target_doc, arenas, flt, with_mmapped) + "\n"])


def document_all(heap, target_doc: dict, arenas, with_mmapped: bool) -> Iterator[str]:
    """Every chunk, unfiltered: the same document as document_filtered, streamed out in pieces,
    each row from a template per state, flag bits and bin, filled in at C speed."""
    hdr = heap.layout.chunk_hdr_sz
    nkeys = len(STATES) << 3  # key: state code << 3 | flag bits

    def template(key, bin_text):
        fl = key & 7
        return (
            '{"address":%%d,"size":%%d,"state":%s,"user_address":%%d,"prev_inuse":%s,'
            '"mmapped":%s,"non_main_arena":%s,"bin":%s}'
            % (
                json.dumps(STATES[key >> 3]),
                "true" if fl & 1 else "false",
                "true" if fl & 2 else "false",
                "true" if fl & 4 else "false",
                bin_text,
            )
        )

    templates = [template(k, "null") for k in range(nkeys)]
    # (bin label or None, key) -> template: a chunk in a bin (only those have these states)
    # names it
    labelled = _Made(
        lambda got: (
            template(got[1], json.dumps(got[0]).replace("%", "%%"))
            if got[0] is not None and _IN_BIN[got[1] >> 3]
            else templates[got[1]]
        )
    )
    mm = [c.as_dict(heap.layout) for c in heap.state.mmapped] if with_mmapped else []
    head = _head(heap, target_doc, mm)
    yield head[:-1] + ',"arenas":['
    for k, a in enumerate(arenas):
        yield ("," if k else "") + arena_listing_text(heap, a)[:-1] + ',"chunks":['
        sep = ""
        for seg in a.heaps:
            bins = seg.bins
            order = sorted(bins)
            for lo in range(0, len(seg.addrs), BATCH):
                addrs, raws = seg.addrs[lo : lo + BATCH], seg.raws[lo : lo + BATCH]
                states = seg.states[lo : lo + BATCH]
                keys = _chunk_keys(states, raws)
                rows = list(map(templates.__getitem__, keys))
                _name_bins(rows, keys, lo, order, bins, labelled)
                if rows:
                    # one % over the batch: no tuple, call and string per row
                    args: list = [0] * (3 * len(rows))
                    args[0::3] = addrs
                    args[1::3] = wordmath.masked(raws, ~7)
                    args[2::3] = wordmath.plus(addrs, hdr)
                    yield sep + ",".join(rows) % tuple(args)
                    sep = ","
        yield "]}"
    yield "]}\n"


def document_filtered(heap, target_doc: dict, arenas, flt: ChunkFilter, with_mmapped: bool) -> str:
    """The chunks the filter keeps, as one JSON text."""
    hdr = heap.layout.chunk_hdr_sz
    names = [json.dumps(s) for s in STATES]
    left = flt.limit if flt.limit is not None else -1
    parts = []
    for a in arenas:
        rows = []
        for seg in a.heaps:
            bins = seg.bins
            for i, (addr, raw, st) in enumerate(zip(seg.addrs, seg.raws, seg.states)):
                size = raw & ~7
                if not flt.keep(st, size):
                    continue
                if left == 0:
                    break
                left -= 1
                b = bins.get(i)
                rows.append(
                    '{"address":%d,"size":%d,"state":%s,"user_address":%d,'
                    '"prev_inuse":%s,"mmapped":%s,"non_main_arena":%s,"bin":%s}'
                    % (
                        addr,
                        size,
                        names[st],
                        addr + hdr,
                        "true" if raw & 1 else "false",
                        "true" if raw & 2 else "false",
                        "true" if raw & 4 else "false",
                        json.dumps(b) if b is not None else "null",
                    )
                )
        parts.append(arena_listing_text(heap, a)[:-1] + ',"chunks":[' + ",".join(rows) + "]}")
    mm = []
    if with_mmapped:
        for c in heap.state.mmapped:
            if not flt.keep(_MMAPPED, c.size) or left == 0:
                continue
            left -= 1
            mm.append(c.as_dict(heap.layout))
    head = _head(heap, target_doc, mm)
    return head[:-1] + ',"arenas":[' + ",".join(parts) + "]}"


# ---- table ----


def table(
    heap, arenas, flt: ChunkFilter, with_mmapped: bool, colour: bool, width: Optional[int] = None
) -> Iterator[Item]:
    """The table: a header, each arena's heaps and footer, the mmapped chunks, mallinfo2 and
    the problems. Without colour, filter or width to fit, 64-bit heaps take the fast path (raw
    text); a width (gdb's `set width`) goes to Table, which fits it."""
    yield from header_items(heap)
    state, L = heap.state, heap.layout
    address_text = fmt.address_of(L.pointer_size)
    if not any(a.heaps for a in state.arenas) and not state.mmapped:
        yield line("malloc has not allocated anything yet: no heap and no mmapped chunk")
    hdr = L.chunk_hdr_sz
    left = flt.limit if flt.limit is not None else -1
    hidden = 0
    fast = flt.everything and not colour and L.size_sz == L.pointer_size == 8 and 2 * L.size_sz == PREVIEW
    fast = fast and not width
    for a in arenas:
        if (flt.codes, flt.min, flt.max) != (None, None, None) and not any(
            flt.keep(st, raw & ~7) for seg in a.heaps for raw, st in zip(seg.raws, seg.states)
        ):
            continue  # filtered and no chunk of this arena matches: no header, no footer
        yield line(arena_name(heap, a), "title")
        for seg in a.heaps:
            yield line(
                f"heap {address_text(seg.start)}-{address_text(seg.end)} "
                f"({fmt.human(seg.end - seg.start)}), {fmt.plural(len(seg), 'chunk')}"
                + ("" if seg.complete else ", walk stopped early"),
                "muted",
            )
            if fast:
                yield from rows_fast(heap, seg)
                continue
            t = Table(
                ["address", "size", "flags", "state", "user address", "data", ""],
                "lrlllll",
                drop=("user address", "data", "flags"),
                cut=("",),
                addresses=("address", "user address"),
            )
            for i, (addr, raw, st) in enumerate(zip(seg.addrs, seg.raws, seg.states)):
                if not i & 0xFFF:
                    progress("listing chunks", i, len(seg), "chunks")
                size = raw & ~7
                if not flt.keep(st, size):
                    continue
                if left == 0:
                    hidden += 1
                    continue
                left -= 1
                name = STATES[st]
                where = seg.bins.get(i)
                hexpart, text = (
                    preview(read_or_none(state.memory, addr + hdr, PREVIEW))
                    if st not in (7, 8, 9)
                    else ("", "")
                )
                t.add(
                    (address_text(addr), "address"),
                    f"{size:#x}",
                    flag_letters(raw),
                    (name + (f" {where}" if where else ""), STATE_TOKENS.get(name)),
                    (address_text(addr + hdr), "address"),
                    hexpart,
                    text,
                )
            if t.rows:
                yield t
        yield from footer(a)
    if with_mmapped and state.mmapped:
        yield line("mmapped chunks", "title")
        t = Table(
            ["address", "size", "flags", "state", "user address", "mapping", "data", ""],
            "lrllllll",
            drop=("user address", "data", "mapping", "flags"),
            cut=("",),
            addresses=("address", "user address", "mapping"),
        )
        for c in state.mmapped:
            if not flt.keep(_MMAPPED, c.size):
                continue
            if left == 0:
                hidden += 1
                continue
            left -= 1
            user = c.user_address(L)
            hexpart, text = preview(read_or_none(state.memory, user, PREVIEW))
            t.add(
                (address_text(c.address), "address"),
                f"{c.size:#x}",
                flag_letters(c.size_field),
                ("mmapped", "used"),
                (address_text(user), "address"),
                f"{address_text(c.mapping_start)}+{fmt.human(c.mapping_size)}",
                hexpart,
                text,
            )
        if t.rows:
            yield t
        total = sum(c.mapping_size for c in state.mmapped)
        yield line(f"  {fmt.plural(len(state.mmapped), 'mmapped chunk')}, {fmt.size(total)} mapped", "muted")
    if hidden:
        yield line(f"... {fmt.plural(hidden, 'more chunk')} not shown (--limit {flt.limit})")
    mi = state.mallinfo2()._asdict()
    wrapped = mallinfo2_wrapped(state)  # never shown: a problem says why
    shown = " ".join(
        f"{k}={'?' if k in wrapped else mi[k]}"
        for k in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "uordblks", "fordblks", "keepcost")
    )
    yield line(f"mallinfo2: {shown}", "muted")
    yield from problem_items(state.problems, L.pointer_size)


def rows_fast(heap, seg) -> Iterator[str]:
    """One heap's table without colour, filter or limit: the same lines as through Table,
    made a batch at a time at C speed, the data column from the two words after each
    header that the heap walk kept: every column of a batch laid out at once (see below)."""
    n = len(seg.addrs)
    if not n:
        return
    memory = heap.state.memory
    hdr = heap.layout.chunk_hdr_sz
    addrs, raws, states, bins = seg.addrs, seg.raws, seg.states, seg.bins
    special = {}  # index -> (hex, text): no preview, or one the walk's words cannot give
    for i in compress(range(n), states.translate(_NO_PREVIEW)):
        special[i] = ("", "")
    for i in seg.unread:
        if i not in special:
            special[i] = preview(read_or_none(memory, addrs[i] + hdr, PREVIEW))
    named = set(zip(map(states.__getitem__, bins.keys()), bins.values()))
    size_w = max(len("size"), len("%#x" % (max(raws) & ~7)))
    state_w = max(
        [len("state")]
        + [len(STATES[st]) for st in set(states)]
        + [len(STATES[st]) + 1 + len(label) for st, label in named if label]
    )
    data_w = max(
        [len("data")]
        + [len(h) for h, _ in special.values()]
        + ([len(preview(bytes(PREVIEW))[0])] if len(special) < n else [])
    )
    addr_w = max(len("user address"), len(fmt.address(0, heap.layout.pointer_size)))
    widths = (addr_w, size_w, 5, state_w, addr_w, data_w)
    fmt_line = "%%-%ds  %%%ds  %%-%ds  %%-%ds  %%-%ds  %%-%ds  %%s" % widths
    yield (fmt_line % ("address", "size", "flags", "state", "user address", "data", "")).rstrip() + "\n"
    address = "0x%%0%dx" % (len(fmt.address(0, heap.layout.pointer_size)) - 2)
    # Every row but the special ones is as wide as the others: a batch is laid out in one
    # bytearray, each column's characters copied into place a position at a time (a strided
    # slice per character, at C speed), the addresses and data from hex() of the arrays'
    # bytes; the special rows are then laid out one by one and put in their place.
    hexw = 2 * seg.fds.itemsize  # hex digits of a word
    fixed_w = 2 + 5 + 2 + state_w + 2  # "  flags  state  "
    c_size = addr_w + 2
    c_fixed = c_size + size_w
    c_user = c_fixed + fixed_w + 2
    c_data = c_user + hexw + 2
    c_text = c_data + data_w + 2
    width = c_text + PREVIEW + 1
    blank = bytearray(b" " * width)
    blank[0:2] = blank[c_user - 2 : c_user] = b"0x"
    blank[-1:] = b"\n"
    sizes = _Made(("%%#%dx" % size_w).__mod__)  # size -> its column
    nkeys = len(STATES) << 3

    def fixed(key: int, state_text: str) -> bytes:
        text = "  %s  %s  " % (_FLAG_LETTERS[key & 7].ljust(5), state_text.ljust(state_w))
        return text.encode("ascii") if text.isascii() and len(text) == fixed_w else b""

    by_key = [fixed(k, STATES[k >> 3]) for k in range(nkeys)]
    labelled = _Made(  # (bin label or None, key) -> its fixed text, as document_all's
        lambda got: (
            fixed(got[1], STATES[got[1] >> 3] + " " + got[0])
            if got[0] and _IN_BIN[got[1] >> 3]
            else by_key[got[1]]
        )
    )
    code = seg.fds.typecode
    todo = sorted(special)
    order = sorted(bins)
    for lo in range(0, n, BATCH):
        progress("listing chunks", lo, n, "chunks")
        hi = min(n, lo + BATCH)
        m = hi - lo
        a, r, st = addrs[lo:hi], raws[lo:hi], states[lo:hi]
        keys = _chunk_keys(st, r)
        fixeds = list(map(by_key.__getitem__, keys))
        _name_bins(fixeds, keys, lo, order, bins, labelled)
        odd = todo[bisect_left(todo, lo) : bisect_left(todo, hi)]
        if b"" in fixeds:  # a label that is not plain ASCII: laid out as the special rows
            odd = sorted(set(odd).union(lo + i for i, f in enumerate(fixeds) if not f))
            fixeds = [f or b" " * fixed_w for f in fixeds]
        user = wordmath.plus(a, hdr)
        # The leading hex digits every address of the batch shares (a batch spans a megabyte
        # or so) go into the row template once; only the digits after them are copied.  A
        # heap's chunks are in address order (the walk only goes forward, and index_of
        # bisects them), so the first and last of a batch bound it.
        row = bytearray(blank)
        same = _shared_digits(a[0], a[-1], hexw)
        row[2 : 2 + same] = ("%0*x" % (hexw, a[0]))[:same].encode()
        usame = _shared_digits(user[0], user[-1], hexw)
        row[c_user : c_user + usame] = ("%0*x" % (hexw, user[0]))[:usame].encode()
        out = row * m
        fds, bks = seg.fds[lo:hi], seg.bks[lo:hi]
        words = array(code, bytes(2 * m * fds.itemsize))
        words[0::2], words[1::2] = fds, bks
        raw_words = words.tobytes()
        if sys.byteorder == "little":  # addresses big end first, the data in memory order
            a.byteswap()
            user.byteswap()
        size_text = "".join(map(sizes.__getitem__, wordmath.masked(r, ~7)))
        # each row's two words as 'hex hex', then hex()'s separator (the next row's space)
        data = raw_words.hex(" ", fds.itemsize).encode("ascii") + b" "
        _put(out, width, 2 + same, a.tobytes().hex().encode("ascii")[same:], hexw, hexw - same)
        _put(out, width, c_size, size_text.encode("ascii"), size_w)
        # the flags and state, less the two spaces before them and the spaces every row of the
        # batch has after them
        used = max(len(f.rstrip(b" ")) for f in set(fixeds))
        if used > 2:
            _put(out, width, c_fixed + 2, b"".join(fixeds)[2:], fixed_w, used - 2)
        _put(out, width, c_user + usame, user.tobytes().hex().encode("ascii")[usame:], hexw, hexw - usame)
        _put(out, width, c_data, data, 2 * hexw + 2, 2 * hexw + 1)
        previews = raw_words.translate(_PRINTABLE)
        _put(out, width, c_text, previews, PREVIEW)
        text = out.decode("ascii")
        if odd:
            rows = text.split("\n")
            for i in odd:
                label = bins.get(i)
                k = i - lo
                rows[k] = fmt_line % (
                    (
                        address % addrs[i],
                        "%#x" % (raws[i] & ~7),
                        _FLAG_LETTERS[raws[i] & 7],
                        STATES[st[k]] + (" " + label if label and _IN_BIN[st[k]] else ""),
                        address % (addrs[i] + hdr),
                    )
                    + special.get(i, ("", ""))
                )
                if i not in special:  # its preview as the others have it
                    rows[k] = rows[k][:c_data] + text[k * width + c_data : (k + 1) * width - 1]
            text = "\n".join(rows)
        # A row ends in spaces only when its preview does, or an odd row: then end lines as
        # Table does, a pass per space, each at C speed (rows end in few).  Looking for
        # " \n" in the whole text costs more than the rest of the batch: spaces are everywhere.
        ends_in_space = b" " in previews[PREVIEW - 1 :: PREVIEW]
        while (odd or ends_in_space) and " \n" in text:
            text = text.replace(" \n", "\n")
        yield text


def _shared_digits(low: int, high: int, digits: int) -> int:
    """How many leading digits of `digits` hex digits every number from low to high shares."""
    return digits - ((low ^ high).bit_length() + 3) // 4


def _name_bins(rows: list, keys: Sequence[int], lo: int, order: list, bins: dict, labelled) -> None:
    """rows[k] (chunk lo + k, whose template key is keys[k]) from labelled[(bin, key)] for the
    chunks in a bin; order is bins' indices, sorted. A look-up per chunk in a bin only: most
    chunks are in none."""
    for i in order[bisect_left(order, lo) : bisect_left(order, lo + len(rows))]:
        rows[i - lo] = labelled[bins[i], keys[i - lo]]


class _Made(dict):
    """_Made(make)[key]: make(key), made once per key."""

    def __init__(self, make):
        super().__init__()
        self.make = make

    def __missing__(self, key):
        got = self[key] = self.make(key)
        return got


def _put(out: bytearray, width: int, column: int, values: bytes, w: int, used: Optional[int] = None) -> None:
    """Copy `values`, w bytes a row (the first `used` of them, when given), into the rows of
    `out` (width bytes each) from `column` on."""
    for k in range(w if used is None else used):
        out[column + k :: width] = values[k::w]


def footer(a) -> Iterator[Line]:
    """An arena's totals after its chunks."""
    tot = a.totals()
    free = ", ".join(
        f"{k} {tot[k]['count']} ({fmt.human(tot[k]['bytes'])})"
        for k in ("tcache", "fastbin", "unsorted", "smallbin", "largebin")
        if k in tot
    )
    used = tot.get("used", {"count": 0, "bytes": 0})
    yield line(
        f"  {fmt.plural(a.chunk_count, 'chunk')}; in use {used['count']} ({fmt.human(used['bytes'])})"
        f"; free: {free or 'none'}; top {fmt.size(a.top_size)}; system_mem "
        f"{fmt.size(a.system_mem)}",
        "muted",
    )
    if any(k in tot for k in ("corrupt", "fencepost")):
        extra = ", ".join(f"{k} {tot[k]['count']}" for k in ("corrupt", "fencepost") if k in tot)
        yield line(f"  also: {extra}", "muted")


def summary_body(groups, by: str) -> dict:
    """heapchunks --summary --json: {"by", "groups": [{"key", "count", "bytes"}], "total"}."""
    return {
        "by": by,
        "groups": [{"key": g.key, "count": g.count, "bytes": g.bytes} for g in groups],
        "total": {"count": sum(g.count for g in groups), "bytes": sum(g.bytes for g in groups)},
    }


def summary_table(groups, by: str) -> Table:
    """One row per size (or state), most bytes first, with its share of the bytes."""
    whole = sum(g.bytes for g in groups)
    t = Table([by, "chunks", "bytes", "% bytes"], "lrrr")
    for g in groups:
        key = fmt.size(g.key) if by == "size" else str(g.key)
        t.add(key, format(g.count, ","), fmt.human(g.bytes), fmt.percent(g.bytes, whole))
    return t
