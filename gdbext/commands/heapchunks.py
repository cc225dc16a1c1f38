"""heapchunks: every chunk of every arena, heap by heap, then the mmapped chunks."""

import argparse
import json
import sys
from array import array
from itertools import compress, repeat
from operator import add, and_, lshift, mod, or_

from ..model.ptmalloc import STATES
from ..render import fmt, jsonout
from ..render.table import Table
from ..target.errors import UserError
from ..target.process import Target
from .base import GdbextCommand
from .edge import heap_view, target_json
from .heapcommon import (STATE_TOKENS, arena_name, flag_letters, preview, print_header,
                         problem_lines, problems_json, read_or_none, select_arenas)

PREVIEW = 16
BATCH = 1 << 11  # chunks per piece of output (gdb.write is slower on pieces of megabytes)
_NO_PREVIEW = bytes(int(c < len(STATES) and STATES[c] in ("mmapped", "corrupt", "fencepost"))
                    for c in range(256))  # the table shows no data for these
_PRINTABLE = bytes(c if 32 <= c < 127 else ord(".") for c in range(256))
_FLAG_LETTERS = [flag_letters(f) for f in range(8)]
_IN_BIN = bytes(int(0 < c < len(STATES) and STATES[c] in ("tcache", "fastbin", "unsorted",
                                                          "smallbin", "largebin"))
                for c in range(256))  # state code -> 1 for the states of chunks in a bin


class Filter:
    def __init__(self, args):
        self.states = set(args.state) if args.state else None
        self.codes = {STATES.index(s) for s in self.states} if self.states else None
        try:
            self.min = fmt.parse_size(args.min) if args.min else None
            self.max = fmt.parse_size(args.max) if args.max else None
        except ValueError as e:
            raise UserError(str(e)) from None
        self.limit = args.limit

    @property
    def everything(self) -> bool:
        return self.codes is None and self.min is None and self.max is None and self.limit is None

    def keep(self, state_code: int, size: int) -> bool:
        if self.codes is not None and state_code not in self.codes:
            return False
        if self.min is not None and size < self.min:
            return False
        return self.max is None or size <= self.max


def _state_list(text):
    out = []
    for part in text.split(","):
        if part not in STATES:
            raise argparse.ArgumentTypeError(f"unknown state {part!r} (states: {', '.join(STATES)})")
        out.append(part)
    return out


class HeapChunks(GdbextCommand):
    name = "heapchunks"
    summary = "List every malloc chunk of every arena and every mmapped chunk, with its state."
    details = ("States come from the free lists, not from PREV_INUSE: " + ", ".join(STATES) + ".\n"
               "Flags: P = PREV_INUSE, M = IS_MMAPPED, A = NON_MAIN_ARENA.\n"
               "--arena takes 'main', an arena number as 'arenas' lists them, or an address.\n"
               "SIZE accepts 4096, 0x1000, 4k, 1.5M. A footer per arena gives its totals;\n"
               "glibc's own counts (mallinfo2) close the listing.")

    def add_arguments(self, p):
        p.add_argument("--arena", metavar="ADDRESS|main|N", help="only this arena")
        p.add_argument("--state", action="append", type=_state_list, metavar="STATE",
                       help="only chunks in this state (repeatable, or comma-separated)")
        p.add_argument("--min", metavar="SIZE", help="only chunks of at least SIZE bytes")
        p.add_argument("--max", metavar="SIZE", help="only chunks of at most SIZE bytes")
        p.add_argument("--limit", type=int, metavar="N", help="show at most N chunks")
        p.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        if args.state:
            args.state = [s for group in args.state for s in group]
        if args.limit is not None and args.limit < 0:
            raise UserError("--limit must be 0 or more")
        flt = Filter(args)
        target = Target()
        view = heap_view(target)
        arenas = select_arenas(view, args.arena)
        if args.json and flt.everything:
            self._json_all(view, target, arenas, args.arena is None, out)
        elif args.json:
            self._json(view, target, arenas, flt, args.arena is None, out)
        else:
            self._table(view, arenas, flt, args.arena is None, out)

    # ---- JSON: built from the model's arrays directly, for a million chunks ----
    @staticmethod
    def _arena_json(view, a) -> str:
        info = {"address": a.address, "number": view.arena_number(a.address), "main": a.main,
                "system_mem": a.system_mem, "max_system_mem": a.max_system_mem, "top": a.top,
                "top_size": a.top_size,
                "heaps": [{"start": s.start, "end": s.end, "complete": s.complete}
                          for s in a.heaps],
                "totals": a.totals(), "threads": view.threads_of(a.address)}
        return json.dumps(info, separators=(",", ":"))

    @staticmethod
    def _head(view, target, mm) -> str:
        return jsonout.document("heapchunks", target_json(target), heap=view.header(),
                                mmapped=mm, mallinfo2_wrapped=mallinfo2_wrapped(view.state),
                                problems=problems_json(view.state.problems),
                                mallinfo2=view.state.mallinfo2()._asdict())

    def _json_all(self, view, target, arenas, with_mmapped, out):
        """Every chunk, unfiltered: the same document as _json, streamed out in pieces (a
        million chunks make 150 MB of JSON), each row from a template per state, flag bits and
        bin, filled in at C speed."""
        hdr = view.layout.chunk_hdr_sz
        nkeys = len(STATES) << 3  # key: state code << 3 | flag bits

        def template(key, bin_text):
            fl = key & 7
            return ('{"address":%%d,"size":%%d,"state":%s,"user_address":%%d,"prev_inuse":%s,'
                    '"mmapped":%s,"non_main_arena":%s,"bin":%s}'
                    % (json.dumps(STATES[key >> 3]), "true" if fl & 1 else "false",
                       "true" if fl & 2 else "false", "true" if fl & 4 else "false", bin_text))

        templates = [template(k, "null") for k in range(nkeys)]
        by_label = {}  # bin label -> its templates, made when first needed
        mm = [c.as_dict(view.layout) for c in view.state.mmapped] if with_mmapped else []
        head = self._head(view, target, mm)
        out.write(head[:-1] + ',"arenas":[')
        for k, a in enumerate(arenas):
            out.write(("," if k else "") + self._arena_json(view, a)[:-1] + ',"chunks":[')
            sep = ""
            for seg in a.heaps:
                bins = seg.bins
                for lo in range(0, len(seg.addrs), BATCH):
                    addrs, raws = seg.addrs[lo:lo + BATCH], seg.raws[lo:lo + BATCH]
                    states = seg.states[lo:lo + BATCH]
                    keys = list(map(or_, map(lshift, states, repeat(3)), map(and_, raws, repeat(7))))
                    rows = list(map(templates.__getitem__, keys))
                    # the chunks in a bin (only those have these states) name it
                    for i in compress(range(len(keys)), states.translate(_IN_BIN)):
                        label = bins.get(lo + i)
                        if label is None:
                            continue
                        named = by_label.get(label)
                        if named is None:
                            named = by_label[label] = [None] * nkeys
                        t = named[keys[i]]
                        if t is None:
                            t = named[keys[i]] = template(
                                keys[i], json.dumps(label).replace("%", "%%"))
                        rows[i] = t
                    rows = list(map(mod, rows, zip(addrs, map(and_, raws, repeat(~7)),
                                                   map(add, addrs, repeat(hdr)))))
                    if rows:
                        out.write(sep + ",".join(rows))
                        sep = ","
            out.write("]}")
        out.write("]}\n")

    def _json(self, view, target, arenas, flt, with_mmapped, out):
        hdr = view.layout.chunk_hdr_sz
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
                    rows.append('{"address":%d,"size":%d,"state":%s,"user_address":%d,'
                                '"prev_inuse":%s,"mmapped":%s,"non_main_arena":%s,"bin":%s}'
                                % (addr, size, names[st], addr + hdr,
                                   "true" if raw & 1 else "false", "true" if raw & 2 else "false",
                                   "true" if raw & 4 else "false",
                                   json.dumps(b) if b is not None else "null"))
            text = self._arena_json(view, a)
            parts.append(text[:-1] + ',"chunks":[' + ",".join(rows) + "]}")
        mm = []
        if with_mmapped:
            for c in view.state.mmapped:
                if not flt.keep(STATES.index("mmapped"), c.size) or left == 0:
                    continue
                left -= 1
                mm.append(c.as_dict(view.layout))
        head = self._head(view, target, mm)
        out.json(head[:-1] + ',"arenas":[' + ",".join(parts) + "]}")

    # ---- table ----
    def _table(self, view, arenas, flt, with_mmapped, out):
        print_header(view, out)
        state = view.state
        if not any(a.heaps for a in state.arenas) and not state.mmapped:
            out.line("malloc has not allocated anything yet: no heap and no mmapped chunk")
        hdr = view.layout.chunk_hdr_sz
        left = flt.limit if flt.limit is not None else -1
        hidden = 0
        L = view.layout
        fast = (flt.everything and not out.colour and L.size_sz == L.pointer_size == 8
                and PREVIEW == 2 * L.size_sz)
        for a in arenas:
            out.line([(arena_name(view, a), "title")])
            for seg in a.heaps:
                out.line([(f"heap {fmt.address(seg.start)}-{fmt.address(seg.end)} "
                           f"({fmt.human(seg.end - seg.start)}), {len(seg)} chunks"
                           + ("" if seg.complete else ", walk stopped early"), "muted")])
                if fast:
                    self._rows_fast(view, seg, out)
                    continue
                t = Table(["address", "size", "flags", "state", "user address", "data", ""],
                          "lrlllll")
                for i, (addr, raw, st) in enumerate(zip(seg.addrs, seg.raws, seg.states)):
                    size = raw & ~7
                    if not flt.keep(st, size):
                        continue
                    if left == 0:
                        hidden += 1
                        continue
                    left -= 1
                    name = STATES[st]
                    where = seg.bins.get(i)
                    hexpart, text = preview(read_or_none(view, addr + hdr, PREVIEW)) \
                        if st not in (7, 8, 9) else ("", "")
                    t.add((fmt.address(addr), "address"), f"{size:#x}", flag_letters(raw),
                          (name + (f" {where}" if where else ""), STATE_TOKENS.get(name)),
                          (fmt.address(addr + hdr), "address"), hexpart, text)
                if t.rows:
                    out.table(t)
            self._footer(view, a, out)
        if with_mmapped and state.mmapped:
            out.line([("mmapped chunks", "title")])
            t = Table(["address", "size", "flags", "state", "user address", "mapping", "data", ""],
                      "lrllllll")
            for c in state.mmapped:
                if not flt.keep(STATES.index("mmapped"), c.size):
                    continue
                if left == 0:
                    hidden += 1
                    continue
                left -= 1
                user = c.user_address(view.layout)
                hexpart, text = preview(read_or_none(view, user, PREVIEW))
                t.add((fmt.address(c.address), "address"), f"{c.size:#x}",
                      flag_letters(c.size_field), ("mmapped", "used"), (fmt.address(user), "address"),
                      f"{fmt.address(c.mapping_start)}+{fmt.human(c.mapping_size)}", hexpart, text)
            if t.rows:
                out.table(t)
            total = sum(c.mapping_size for c in state.mmapped)
            out.line([(f"  {len(state.mmapped)} mmapped chunks, {fmt.size(total)} mapped", "muted")])
        if hidden:
            out.line(f"... {hidden} more chunks not shown (--limit {flt.limit})")
        mi = state.mallinfo2()._asdict()
        wrapped = mallinfo2_wrapped(state)  # never shown: a problem says why
        shown = " ".join(f"{k}={'?' if k in wrapped else mi[k]}" for k in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "uordblks", "fordblks", "keepcost"))
        out.line([(f"mallinfo2: {shown}", "muted")])
        problems(view, out)

    def _rows_fast(self, view, seg, out):
        """One heap's table without colour, filter or limit: the same lines as through Table,
        made a batch at a time at C speed, the data column from the two words after each
        header that the heap walk kept."""
        n = len(seg.addrs)
        if not n:
            return
        hdr = view.layout.chunk_hdr_sz
        addrs, raws, states, bins = seg.addrs, seg.raws, seg.states, seg.bins
        special = {}  # index -> (hex, text): no preview, or one the walk's words cannot give
        for i in compress(range(n), states.translate(_NO_PREVIEW)):
            special[i] = ("", "")
        for i in seg.unread:
            if i not in special:
                special[i] = preview(read_or_none(view, addrs[i] + hdr, PREVIEW))
        named = set(zip(map(states.__getitem__, bins.keys()), bins.values()))
        size_w = max(len("size"), len("%#x" % (max(raws) & ~7)))
        state_w = max([len("state")] + [len(STATES[st]) for st in set(states)] +
                      [len(STATES[st]) + 1 + len(label) for st, label in named if label])
        data_w = max([len("data")] + [len(h) for h, _ in special.values()] +
                     ([len(preview(bytes(PREVIEW))[0])] if len(special) < n else []))
        addr_w = max(len("user address"), len(fmt.address(0)))
        line = ("%%-%ds  %%%ds  %%-5s  %%-%ds  %%-%ds  %%-%ds  %%s"
                % (addr_w, size_w, state_w, addr_w, data_w))
        out.write(line % ("address", "size", "flags", "state", "user address", "data", "") + "\n")
        code = seg.fds.typecode
        address = "0x%%0%dx" % (len(fmt.address(0)) - 2)
        todo = sorted(special)
        j = 0
        for lo in range(0, n, BATCH):
            hi = min(n, lo + BATCH)
            m = hi - lo
            a, r, st = addrs[lo:hi], raws[lo:hi], states[lo:hi]
            state_text = list(map(STATES.__getitem__, st))
            for i in compress(range(m), st.translate(_IN_BIN)):
                label = bins.get(lo + i)
                if label:
                    state_text[i] = STATES[st[i]] + " " + label
            fds, bks = seg.fds[lo:hi], seg.bks[lo:hi]
            words = array(code, bytes(2 * m * fds.itemsize))
            words[0::2], words[1::2] = fds, bks
            text = words.tobytes().translate(_PRINTABLE).decode("ascii")
            if sys.byteorder == "little":  # print each word's bytes in memory order
                fds.byteswap()
                bks.byteswap()
            hexes = list(map(mod, repeat("%016x %016x"), zip(fds, bks)))
            texts = list(map(text.__getitem__, map(slice, range(0, PREVIEW * m, PREVIEW),
                                                     range(PREVIEW, PREVIEW * m + 1, PREVIEW))))
            while j < len(todo) and todo[j] < hi:
                hexes[todo[j] - lo], texts[todo[j] - lo] = special[todo[j]]
                j += 1
            rows = map(mod, repeat(line), zip(
                map(mod, repeat(address), a), map(mod, repeat("%#x"), map(and_, r, repeat(~7))),
                map(_FLAG_LETTERS.__getitem__, map(and_, r, repeat(7))), state_text,
                map(mod, repeat(address), map(add, a, repeat(hdr))), hexes, texts))
            out.write("\n".join(rows) + "\n")

    def _footer(self, view, a, out):
        tot = a.totals()
        free = ", ".join(f"{k} {tot[k]['count']} ({fmt.human(tot[k]['bytes'])})"
                         for k in ("tcache", "fastbin", "unsorted", "smallbin", "largebin")
                         if k in tot)
        used = tot.get("used", {"count": 0, "bytes": 0})
        out.line([(f"  {a.chunk_count} chunks; in use {used['count']} ({fmt.human(used['bytes'])})"
                   f"; free: {free or 'none'}; top {fmt.size(a.top_size)}; system_mem "
                   f"{fmt.size(a.system_mem)}", "muted")])
        if any(k in tot for k in ("corrupt", "fencepost")):
            extra = ", ".join(f"{k} {tot[k]['count']}" for k in ("corrupt", "fencepost") if k in tot)
            out.line([(f"  also: {extra}", "muted")])


def problems(view, out, within=None):
    """Every problem the model found (or those in [lo, hi)): one line each, and past the first
    few of one cause, one line that counts the rest."""
    shown = [p for p in view.state.problems
             if within is None or within[0] <= p.address < within[1]]
    for _, text in problem_lines(shown):
        out.line([("problem: ", "warning"), (text, None)])
    return shown


def mallinfo2_wrapped(state):
    from ..model.ptmalloc.checks import mallinfo2_wrapped as wrapped
    return wrapped(state)


COMMANDS = (HeapChunks,)
