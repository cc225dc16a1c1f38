"""heapsnap: save the heap model at a stop, list and drop saved ones, and diff two of them."""

import json
import os
from itertools import chain

import gdb

from ..inferior.errors import UserError
from ..inferior.process import Target
from ..render import jsonout
from ..render.fmt import plural
from ..views import heapsnap as snap_views
from .allocwatch import site_table
from .base import GdbextCommand
from .lazy_inferior import heap_view, target_json

# name -> Snapshot, for the gdb session
SAVED: dict = {}
CURRENT = "(current stop)"
TARGET_KEYS = ("pid", "kind", "glibc", "symbols")


def _snapshot_module():
    from ..model.ptmalloc import snapshot

    return snapshot


def _take(name: str):
    from ..inferior.process import require_stopped

    require_stopped()
    target = Target()
    view = heap_view(target)
    meta = dict(target_json(target))
    snap = _snapshot_module().take(name, view.state, meta)
    table = site_table()
    if table is not None:  # allocwatch's call sites go with the chunks in use
        snap.add_sites(table.label_of)
    return snap


def _load(path: str):
    try:
        with open(os.path.expanduser(path)) as f:
            doc = json.load(f)
        snap = _snapshot_module().Snapshot.from_json(doc)
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path} is not a heapsnap file ({e})") from None
    snap.meta["file"] = path
    return snap


def _find(word: str):
    if word in SAVED:
        return SAVED[word]
    if os.sep in word or word.endswith(".json") or os.path.isfile(os.path.expanduser(word)):
        return _load(word)
    names = ", ".join(sorted(SAVED)) or "none saved"
    raise UserError(f"no snapshot named {word!r} ({names}); a file needs a path")


class Heapsnap(GdbextCommand):
    name = "heapsnap"
    reads_stopped_process = False  # list, drop and a diff of two saved ones need no stop; _take checks
    summary = "Save heap snapshots and show what changed between two of them."
    details = (
        "heapsnap save NAME [--file PATH] | list [--json] | drop NAME\n"
        "heapsnap diff A [B] [--by size|state|arena|site] [--json]\n\n"
        "A snapshot is the heap model at this stop: every chunk's address, size, state and\n"
        "arena, each arena's top, the mmapped chunks.  Saved ones last for the gdb session;\n"
        "--file also writes a JSON file that a later session (a core of the same program)\n"
        "loads by its path in place of a name.  diff compares A with B (default: this stop)\n"
        "by chunk address: added (including what was carved from top), removed (merged or\n"
        "given back), changed (same address, another size or state: used -> tcache is freed\n"
        "to the thread's cache, not returned to the system), and each arena's top apart.\n"
        "The summary groups them by size, state or arena, or by the call site that allocated\n"
        "each chunk (site: a snapshot saved while allocwatch is on keeps its chunks' sites);\n"
        "its in-use and free changes are the change in mallinfo2 between the two stops."
    )

    def add_arguments(self, p):
        p.add_argument("--json", dest="top_json", action="store_true", help="one JSON document")
        sub = p.add_subparsers(dest="action", metavar="save|list|drop|diff")
        sv = sub.add_parser("save", help="save the heap at this stop")
        sv.add_argument("snap", metavar="NAME", help="the snapshot's name")
        sv.add_argument("--file", metavar="PATH", help="also write it to this JSON file")
        sv.add_argument("--json", action="store_true", help="one JSON document")
        ls = sub.add_parser("list", help="the saved snapshots")
        ls.add_argument("--json", action="store_true", help="one JSON document")
        dr = sub.add_parser("drop", help="forget a saved snapshot")
        dr.add_argument("snap", metavar="NAME", help="the snapshot's name")
        dr.add_argument("--json", action="store_true", help="one JSON document")
        df = sub.add_parser("diff", help="what changed from A to B (default: this stop)")
        df.add_argument("a", metavar="A", help="a saved name or a snapshot file's path")
        df.add_argument("b", metavar="B", nargs="?", help="another (default: this stop)")
        df.add_argument(
            "--by",
            choices=("size", "state", "arena", "site"),
            default="size",
            help="summary groups (site: allocwatch's call sites, saved with each snapshot)",
        )
        df.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        action = args.action or "list"
        want_json = getattr(args, "json", False) or args.top_json
        if action == "save":
            if not args.snap.strip():
                raise UserError("a snapshot needs a name: heapsnap save NAME")
            snap = _take(args.snap)
            if args.file:
                path = os.path.expanduser(args.file)
                try:
                    text = json.dumps(snap.to_json(), separators=(",", ":"))  # C speed; dump is not
                    with open(path, "w") as f:
                        f.write(text)
                except OSError as e:
                    raise UserError(f"cannot write {args.file}: {e.strerror}") from None
                snap.meta["file"] = args.file
            SAVED[args.snap] = snap
            if want_json:
                target = {k: snap.meta.get(k) for k in TARGET_KEYS}
                out.json(
                    jsonout.document("heapsnap", target, saved=args.snap, chunks=len(snap), file=args.file)
                )
                return
            where = f", written to {args.file}" if args.file else ""
            what = f"{plural(len(snap), 'chunk')} in {plural(len(snap.arenas), 'arena')}"
            out.line(f"heapsnap: saved {args.snap!r}: {what}{where}")
            return
        if action == "drop":
            if args.snap not in SAVED:
                raise UserError(f"no snapshot named {args.snap!r}")
            snap = SAVED.pop(args.snap)
            if want_json:
                target = {k: snap.meta.get(k) for k in TARGET_KEYS}
                out.json(jsonout.document("heapsnap", target, dropped=args.snap))
                return
            out.line(f"heapsnap: dropped {args.snap!r}")
            return
        if action == "list":
            snaps = list(SAVED.values())
            if want_json:
                out.json(
                    jsonout.document("heapsnap", _current_target(), snapshots=[_listed(s) for s in snaps])
                )
                return
            if not snaps:
                out.line("heapsnap: no snapshot saved ('heapsnap save NAME' saves one)")
                return
            out.emit([snap_views.list_table(snaps)])
            return
        a = _find(args.a)
        b = _find(args.b) if args.b else _take(CURRENT)
        if args.by == "site" and not (a.sites or b.sites):
            raise UserError("--by site needs snapshots saved while 'allocwatch' was on")
        doc = _snapshot_module().diff(a, b, args.by, lazy=want_json)
        if want_json:
            target = b.meta if args.b else target_json(Target())
            keys = {k: target.get(k) for k in TARGET_KEYS}
            out.json_pieces(chain(jsonout.document_pieces("heapsnap", keys, **doc), ["\n"]))
            return
        out.emit(snap_views.text(doc, _pointer_size()))


def _listed(snap) -> dict:
    """A saved snapshot as `heapsnap list --json` lists it: its process, and its file or null."""
    row = {"name": snap.name, "chunks": len(snap), "arenas": len(snap.arenas)}
    row.update({k: snap.meta.get(k) for k in TARGET_KEYS})
    row["file"] = snap.meta.get("file")
    return row


def _current_target():
    """The process at hand, for a document about snapshots that may be of others; null with
    none (saved snapshots outlive their process)."""
    try:
        return target_json(Target())
    except UserError:
        return None


COMMANDS = (Heapsnap,)


def _pointer_size() -> int:
    """The target architecture's pointer size, as `Target.pointer_size` has it, but known with no
    process too (a diff of two saved snapshots): addresses print that wide."""
    return gdb.lookup_type("void").pointer().sizeof
