"""vmmap: every mapping of the process, named by what it holds."""

import fnmatch
import re

from ..model.regions import CLASSES, KINDS, neighbours, region_at
from ..render import jsonout
from ..inferior.errors import UserError
from ..inferior.process import Target, evaluate_address
from ..views import vmmap as vmmap_views
from .base import GdbextCommand
from .lazy_inferior import maps_unreadable, target_json, regions, resident_sizes

_EXPRESSION_START = re.compile(r"^[0-9$&*(\-]")


class Vmmap(GdbextCommand):
    name = "vmmap"
    summary = "Show the memory map of the process, each region named by what it holds."
    details = (
        "An ADDRESS (any gdb expression) shows the one region that holds it, or the nearest\n"
        "regions when it is unmapped. A PATTERN filters by path or label (shell wildcards\n"
        "allowed). Kinds: " + ", ".join(KINDS) + ".\nClasses: " + ", ".join(CLASSES) + "."
    )

    def add_arguments(self, p):
        p.add_argument(
            "what",
            nargs="?",
            metavar="ADDRESS|PATTERN",
            help="an address expression, or a pattern matched against paths and labels",
        )
        p.add_argument(
            "--kind",
            action="append",
            choices=KINDS,
            metavar="KIND",
            help="show only regions of this kind (repeatable)",
        )
        p.add_argument("--summary", action="store_true", help="totals per kind and per class")
        p.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        target = Target()
        why = maps_unreadable(target)
        if why:  # what can be rebuilt from memory is not a memory map worth showing
            raise UserError(
                f"{why}; the heap commands and threadstacks still work from the process's memory and symbols"
            )
        regs = regions(target)
        address = self._address(args.what, regs)
        if address is not None:
            return self._show_address(target, regs, address, args, out)
        if args.what:
            pat = args.what
            match = (
                (lambda s: fnmatch.fnmatchcase(s, pat))
                if any(c in pat for c in "*?[")
                else (lambda s: pat in s)
            )
            regs = [r for r in regs if match(r.path) or match(r.label) or match(r.describe())]
        if args.kind:
            regs = [r for r in regs if r.kind in args.kind]
        target_doc = target_json(target) if args.json else None
        # Resident sizes last: every read of the inferior before this may fault pages in.
        summary = None
        if args.summary:
            rss, rss_unknown = resident_sizes(target)
            summary = vmmap_views.summary(regs, rss)
            summary["resident_unknown"] = rss_unknown  # why, when a live process's is unknown
        if args.json:
            body = {"regions": [vmmap_views.region_json(r) for r in regs]}
            if summary is not None:
                body["summary"] = summary
            out.json(jsonout.document("vmmap", target_doc, **body))
            return
        if not regs:
            raise UserError(f"no region matches {args.what!r}" if args.what else "no regions match")
        if summary is not None:
            out.emit(vmmap_views.summary_items(summary))
            return
        out.table(vmmap_views.regions_table(regs))

    def _address(self, what, regs):
        if not what:
            return None
        if _EXPRESSION_START.match(what):
            return evaluate_address(what)
        try:
            return evaluate_address(what)
        except UserError:
            return None  # a word gdb cannot evaluate is a pattern

    def _show_address(self, target, regs, address, args, out):
        r = region_at(regs, address)
        below, above = (None, None) if r else neighbours(regs, address)
        if args.json:
            out.json(
                jsonout.document(
                    "vmmap", target_json(target), **vmmap_views.address_body(address, r, below, above)
                )
            )
            return
        out.emit(vmmap_views.address_items(address, r, below, above))


COMMANDS = (Vmmap,)
