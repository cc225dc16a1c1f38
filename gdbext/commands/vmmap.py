"""vmmap: every mapping of the process, named by what it holds."""

from typing import NamedTuple, Optional

from ..model.regions import CLASSES, KINDS, neighbours, region_at
from ..render import jsonout
from ..inferior.errors import UserError
from ..inferior.process import EvaluationError, Evaluated, Target, evaluate
from ..views import line
from ..views import vmmap as vmmap_views
from ..views import explain, vmmap_map
from .base import GdbextCommand, expression
from .lazy_inferior import map_marks, maps_unreadable, target_json, regions, resident_sizes


class _Filter(NamedTuple):
    how: str  # "kind" or "pattern"
    regions: list
    note: Optional[str] = None


class Vmmap(GdbextCommand):
    name = "vmmap"
    summary = "Show the memory map of the process, each region named by what it holds."
    details = (
        "An ADDRESS (any gdb expression) shows the one region that holds it, or the nearest\n"
        "regions when it is unmapped; a struct or union (main_arena) shows where it is.\n"
        "A KIND's name shows the regions of that kind (as --kind does). A PATTERN keeps the\n"
        "regions whose path, label or description holds it: [heap], [stack] and [vdso] as\n"
        "printed; with shell wildcards (* and ?) it matches a whole name: the path, its\n"
        "basename (lib*, *.so*), the label or the kind. One quoted word is a pattern.\n"
        "A word is a kind first, then a pattern, then an expression; one that starts as an\n"
        "expression does ($sp, &x, *p, 0x..., (x)) is an expression first, and a pattern when\n"
        "gdb cannot evaluate it (*sqlite*). When a name is also a symbol vmmap says which it\n"
        "took; write (NAME) or &NAME for the symbol.\n"
        "Kinds: " + ", ".join(KINDS) + ".\nClasses: " + ", ".join(CLASSES) + "."
    )

    def add_arguments(self, p):
        p.add_argument(
            "what",
            nargs="?",
            type=expression,
            metavar="ADDRESS|KIND|PATTERN",
            help="an address expression, a kind, or a pattern matched against paths and labels",
        )
        p.add_argument(
            "--kind",
            action="append",
            choices=KINDS,
            metavar="KIND",
            help="show only regions of this kind (repeatable)",
        )
        p.add_argument("--summary", action="store_true", help="totals per kind and per class")
        p.add_argument("--explain", action="store_true", help="after the output, what each kind shown means")
        p.add_argument("--map", action="store_true", help="draw the regions as a picture (log scale)")
        p.add_argument(
            "--width", type=int, metavar="N", help="--map: columns (default: the terminal's, else 80)"
        )
        p.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        target = Target()
        why = maps_unreadable(target)
        if why:  # what can be rebuilt from memory is not a memory map worth showing
            raise UserError(
                f"{why}; the heap commands and threadstacks still work from the process's memory and symbols"
            )
        regs = regions(target)
        what = args.what.strip() if args.what else None
        chosen = self._resolve(what, regs) if what else None
        if isinstance(chosen, Evaluated):
            ignored = [
                o for o, on in (("--summary", args.summary), ("--kind", args.kind), ("--map", args.map)) if on
            ]
            if ignored:  # they were dropped without a word
                raise UserError(
                    f"an ADDRESS shows the region that holds it: {', '.join(ignored)} lists regions"
                )
            return self._show_address(target, regs, chosen, what, args, out)
        if args.width and not args.map:
            raise UserError("--width is the width of --map's picture; give --map too")
        note = None
        if isinstance(chosen, _Filter):
            regs, note = chosen.regions, chosen.note
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
            body: dict = {"regions": [vmmap_views.region_json(r) for r in regs]}
            if isinstance(chosen, _Filter):
                body["filter"] = {"text": what, "as": chosen.how}
            if summary is not None:
                body["summary"] = summary
            out.json(jsonout.document("vmmap", target_doc, **body))
            return
        if note:
            out.line([(note, "muted")])
        if not regs:
            if isinstance(chosen, _Filter) and chosen.how == "kind" and not args.kind:
                raise UserError(f"the process has no region of kind {what!r}")
            raise UserError(f"no region matches {what!r}" if what else "no regions match")
        if summary is not None:
            out.emit(vmmap_views.summary_items(summary))
            return
        if args.map:
            width = args.width or out.width or 80
            if width < 60:
                raise UserError("--width must be 60 or more")
            out.emit(vmmap_map.picture(regs, width, map_marks(target), target.pointer_size))
        else:
            out.table(vmmap_views.regions_table(regs, target.pointer_size))
        if args.explain:
            out.emit(explain.vmmap(regs))

    def _resolve(self, what, regs):
        """What WHAT names: a kind, a pattern (a _Filter) or an address (Evaluated)."""
        inside = vmmap_views.unquoted(what)
        if inside is not None:
            # A quoted word is a pattern ("/tmp/my dir"), and never a string literal: gdb would
            # put one in the inferior's memory to give it an address. 'x' may be a symbol's name.
            how, matched = vmmap_views.select(regs, inside)
            if matched or what[0] == '"':
                return _Filter(how, matched)
        how, matched = vmmap_views.select(regs, what)
        if how == "kind":
            return _Filter(how, matched, self._also_a_symbol(what, "a kind"))
        if vmmap_views.starts_like_expression(what):
            try:
                return evaluate(what)
            except EvaluationError as e:
                if matched:  # *sqlite*, *.so*: not an expression gdb can evaluate, a pattern
                    return _Filter(how, matched)
                raise _neither(what, e) from None
        if matched:
            return _Filter(how, matched, self._also_a_symbol(what, "a pattern"))
        try:
            return evaluate(what)
        except EvaluationError as e:
            raise _neither(what, e) from None

    @staticmethod
    def _also_a_symbol(what, taken_as) -> Optional[str]:
        """When a bare name vmmap took as a kind or a pattern is also something gdb can
        evaluate, the line that says which it chose."""
        if not vmmap_views.is_identifier(what):
            return None
        try:
            evaluate(what)
        except UserError:
            return None
        return (
            f"{what!r} taken as {taken_as}; 'vmmap ({what})' shows the region at its value as an expression"
        )

    def _show_address(self, target, regs, evaluated, what, args, out):
        address = evaluated.address
        r = region_at(regs, address)
        below, above = (None, None) if r else neighbours(regs, address)
        if args.json:
            out.json(
                jsonout.document(
                    "vmmap", target_json(target), **vmmap_views.address_body(address, r, below, above)
                )
            )
            return
        if evaluated.object_type:
            out.line(line(f"{what} is a {evaluated.object_type}: showing where it is (&{what})", "muted"))
        out.emit(vmmap_views.address_items(address, r, below, above, target.pointer_size))


def _neither(what: str, e: EvaluationError) -> UserError:
    return UserError(
        f"no region matches {what!r} (as a kind, path or label) and gdb cannot evaluate it: {e.reason}"
    )


COMMANDS = (Vmmap,)
