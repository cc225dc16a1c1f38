"""vmmap: every mapping of the process, named by what it holds."""

import fnmatch
import re

from ..model.regions import CLASSES, KINDS, neighbours, region_at
from ..render import fmt, jsonout
from ..render.table import Table
from ..target.errors import UserError
from ..target.process import Target, evaluate_address
from .base import GdbextCommand
from .edge import maps_unreadable, target_json, regions, resident_sizes

_EXPRESSION_START = re.compile(r"^[0-9$&*(\-]")


def region_json(r) -> dict:
    return {"start": r.start, "end": r.end, "size": r.size, "perms": r.perms, "offset": r.offset,
            "path": r.path or None, "kind": r.kind, "class": r.cls, "label": r.label or None,
            "thread": r.thread, "tid": r.tid}


def region_name(r) -> str:
    parts = []
    if r.path:
        parts.append(r.path)
    if r.label:
        parts.append(f"({r.label})")
    if r.thread is not None:
        parts.append(f"thread {r.thread} (tid {r.tid})")
    return " ".join(parts)


def _summary(regs, rss):
    kinds, classes = {}, {}
    total = {"size": 0, "resident": 0 if rss is not None else None, "count": 0}
    # Share a mapping's resident bytes among the regions cut from it, by size.
    for r in regs:
        res = None
        if rss is not None:
            whole = rss.get(r.mapping.start, 0)
            res = whole * r.size // max(1, r.mapping.size)
        for table, key in ((kinds, r.kind), (classes, r.cls)):
            e = table.setdefault(key, {"size": 0, "resident": 0 if rss is not None else None, "count": 0})
            e["size"] += r.size
            e["count"] += 1
            if res is not None:
                e["resident"] += res
        total["size"] += r.size
        total["count"] += 1
        if res is not None:
            total["resident"] += res
    return {"kinds": kinds, "classes": classes, "total": total}


class Vmmap(GdbextCommand):
    name = "vmmap"
    summary = "Show the memory map of the process, each region named by what it holds."
    details = ("An ADDRESS (any gdb expression) shows the one region that holds it, or the nearest\n"
               "regions when it is unmapped. A PATTERN filters by path or label (shell wildcards\n"
               "allowed). Kinds: " + ", ".join(KINDS) + ".\nClasses: " + ", ".join(CLASSES) + ".")

    def add_arguments(self, p):
        p.add_argument("what", nargs="?", metavar="ADDRESS|PATTERN",
                       help="an address expression, or a pattern matched against paths and labels")
        p.add_argument("--kind", action="append", choices=KINDS, metavar="KIND",
                       help="show only regions of this kind (repeatable)")
        p.add_argument("--summary", action="store_true", help="totals per kind and per class")
        p.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        target = Target()
        why = maps_unreadable(target)
        if why:  # what can be rebuilt from memory is not a memory map worth showing
            raise UserError(f"{why}; the heap commands and threadstacks still work from the "
                            f"process's memory and symbols")
        regs = regions(target)
        address = self._address(args.what, regs)
        if address is not None:
            return self._show_address(target, regs, address, args, out)
        if args.what:
            pat = args.what
            match = (lambda s: fnmatch.fnmatchcase(s, pat)) if any(c in pat for c in "*?[") \
                else (lambda s: pat in s)
            regs = [r for r in regs if match(r.path) or match(r.label) or match(r.describe())]
        if args.kind:
            regs = [r for r in regs if r.kind in args.kind]
        target_doc = target_json(target) if args.json else None
        # Resident sizes last: every read of the inferior before this may fault pages in.
        summary = None
        if args.summary:
            rss, rss_unknown = resident_sizes(target)
            summary = _summary(regs, rss)
            summary["resident_unknown"] = rss_unknown  # why, when a live process's is unknown
        if args.json:
            body = {"regions": [region_json(r) for r in regs]}
            if summary is not None:
                body["summary"] = summary
            out.json(jsonout.document("vmmap", target_doc, **body))
            return
        if not regs:
            raise UserError(f"no region matches {args.what!r}" if args.what else "no regions match")
        if summary is not None:
            self._print_summary(summary, out)
            if summary["resident_unknown"]:
                out.line([("resident sizes unknown: " + summary["resident_unknown"], "warning")])
            return
        self._print_table(regs, out)

    def _address(self, what, regs):
        if not what:
            return None
        if _EXPRESSION_START.match(what):
            return evaluate_address(what)
        try:
            return evaluate_address(what)
        except UserError:
            return None  # a word gdb cannot evaluate is a pattern

    def _print_table(self, regs, out):
        t = Table(["start", "end", "size", "perms", "offset", "kind", "path / label"], "lllllll")
        for r in regs:
            tok = r.cls
            t.add((fmt.address(r.start), tok), (fmt.address(r.end), tok), fmt.size(r.size), r.perms,
                  f"{r.offset:#x}", (r.kind, tok), region_name(r))
        out.table(t)

    def _print_summary(self, s, out):
        for title, table, keys in (("by kind", s["kinds"], KINDS), ("by class", s["classes"], CLASSES)):
            t = Table([title, "regions", "size", "resident"], "lrrr")
            for k in keys:
                if k in table:
                    e = table[k]
                    t.add(k, e["count"], fmt.size(e["size"]),
                          fmt.size(e["resident"]) if e["resident"] is not None else "-")
            tot = s["total"]
            t.add(("total", "title"), tot["count"], fmt.size(tot["size"]),
                  fmt.size(tot["resident"]) if tot["resident"] is not None else "-")
            out.table(t)
            out.line("")

    def _show_address(self, target, regs, address, args, out):
        r = region_at(regs, address)
        below, above = (None, None) if r else neighbours(regs, address)
        if args.json:
            doc = {"address": address, "region": region_json(r) if r else None,
                   "offset": address - r.start if r else None,
                   "below": dict(region_json(below), distance=address - below.end) if below else None,
                   "above": dict(region_json(above), distance=above.start - address) if above else None}
            out.json(jsonout.document("vmmap", target_json(target), **doc))
            return
        if r:
            self._print_table([r], out)
            out.line(f"{fmt.address(address)} is {address - r.start:#x} ({address - r.start}) bytes into "
                     f"the {r.describe()}")
            return
        out.line(f"{fmt.address(address)} is not mapped.")
        if below:
            out.line(f"  {address - below.end:#x} bytes past the end of {below.describe()} "
                     f"[{fmt.address(below.start)}, {fmt.address(below.end)})")
        if above:
            out.line(f"  {above.start - address:#x} bytes below the start of {above.describe()} "
                     f"[{fmt.address(above.start)}, {fmt.address(above.end)})")
COMMANDS = (Vmmap,)
