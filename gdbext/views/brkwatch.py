"""brkwatch's documents and words: an event's change and delta, its caller, the log's table
and summary, the status lines, what on, off and clear did, the log and status documents, and
the lines the watcher writes on its own (the --stop line, notes).  Plain Python over the
model's records (model/brklog.py) and the watcher's status (a dict), tested without gdb."""

from typing import Iterator, List, Optional, Sequence

from ..model import brklog as M
from ..model.brkoptions import Options
from ..render import fmt
from ..render.table import Table
from . import Item, line


def delta_text(d: Optional[int]) -> str:
    if d is None:
        return "?"
    if d == 0:
        return "0"
    return f"{'+' if d >= 0 else '-'}{abs(d):#x}"


def what_text(e: M.BrkEvent) -> str:
    """What changed: old -> new break, or the mapping's address, length and protection."""
    if e.kind == "brk":
        old = f"{e.old_brk:#x}" if e.old_brk is not None else "?"
        new = f"{e.new_brk:#x}" if e.new_brk is not None else "?"
        if not e.ok and e.requested is not None:
            return f"{old} (asked {e.requested:#x})"
        return f"{old} -> {new}"
    if e.kind == "mremap":
        new = f"{e.address:#x}" if e.address is not None else "?"
        return f"{e.old_address:#x}+{e.old_length:#x} -> {new}+{e.length:#x}"
    addr = f"{e.address:#x}" if e.address is not None else "?"
    prot = f" {M.prot_text(e.prot)}" if e.prot is not None else ""
    return f"{addr}+{e.length:#x}{prot}"


def event_line(e: M.BrkEvent) -> str:
    """An event in one line: kind, change, delta, result, caller's function."""
    return f"{e.kind} {what_text(e)} {delta_text(e.delta)} {e.result}" + (
        f" in {e.caller['function']}" if e.caller and e.caller.get("function") else ""
    )


def caller_text(e: M.BrkEvent) -> str:
    """The program's frame that caused the event, and the malloc call when known."""
    c = e.caller
    text = "?"
    if not c and e.via:  # no frame of the program's own: name what in libc asked
        frame = (e.alloc or {}).get("frame")
        names = [M.alloc_name(v) for v in e.via]
        i = e.via.index(frame) if frame in e.via else next((k for k, n in enumerate(names) if n), None)
        text = f"(libc: {e.via[i + 1] if i is not None and i + 1 < len(e.via) else e.via[-1]})"
    if c:
        text = c.get("function") or object_text(c) or (f"{c['pc']:#x}" if c.get("pc") is not None else "?")
        if c.get("file"):
            text += f" ({c['file']}:{c['line']})" if c.get("line") else f" ({c['file']})"
    alloc = M.describe_alloc(e.alloc)
    if alloc:
        text += f" via {alloc}"
    elif e.via and e.source == "syscall()":
        text += " via syscall()"
    return text


def object_text(frame: dict) -> str:
    """'python3.11+0xfb51c': a frame of a stripped object, by its file and the offset from its
    load base; '' when unknown."""
    if frame.get("object") and frame.get("object_offset") is not None:
        return f"{frame['object']}+{frame['object_offset']:#x}"
    return ""


def threshold_text(t: Optional[int]) -> str:
    return fmt.human(t) if t is not None else "?"


def status_lines(st: dict) -> List[str]:
    """`brkwatch status` from the status document (Watcher.status())."""
    opts = Options(**st["options"])
    lines = [f"brkwatch is {'on' if st['on'] else 'off'}; options: {opts.text()}"]
    if st["method"]:
        lines.append(f"  watching with: {st['hooks']}")
    elif st["on"] and st["waiting"]:
        lines.append(f"  not armed: {st['waiting']}")
    for why in st["not_used"]:
        lines.append(f"  not used: {why}")
    pid = f"process {st['pid']}" if st["pid"] else "no process watched yet"
    kept = "" if st["kept"] == st["events"] else f" ({st['kept']} kept)"
    lines.append(
        f"  {st['events']} event(s){kept}, {pid} (inferior {st['inferior']}); the log is cleared at a new run"
    )
    if st["threshold_source"]:
        lines.append(f"  mmap_threshold read from {st['threshold_source']}")
    for n in st["notes"]:
        lines.append(f"  note: {n}")
    if st["errors"]:
        lines.append(f"  {st['errors']} event(s) could not be read; last: {st['last_error']}")
    return lines


def summary_text(log: M.BrkLog) -> str:
    s = log.summary
    if not s.events:
        return "no events"
    kinds = ", ".join(f"{k} {n}" for k, n in M.counts_by_kind(log.events).items())
    net = s.brk_growth + s.mmapped_growth
    text = (
        f"{s.events} event(s) ({kinds}); net growth {delta_text(net)} ({fmt.human(abs(net))}"
        f"{' less' if net < 0 else ''}: break {delta_text(s.brk_growth)}, "
        f"mmapped {delta_text(s.mmapped_growth)})"
    )
    if s.largest:
        text += f"; largest step #{s.largest[0]} {delta_text(s.largest[1])} ({fmt.human(abs(s.largest[1]))})"
    if s.failures:
        text += f"; {s.failures} failed"
    return text


def event_table(events) -> Table:
    """The log's table: one row per event."""
    t = Table(
        ["#", "thread", "kind", "change", "delta", "result", "heap", "mmapped", "threshold", "caller"],
        "rllllrrrrl",
        drop=("threshold", "mmapped", "result", "heap"),
        cut=("thread", "caller"),
    )
    for e in events:
        tok = "warning" if not e.ok else ("dynamic" if (e.delta or 0) >= 0 else "free")
        t.add(
            e.seq,
            f"{e.thread} ({e.tid})",
            (e.kind, tok),
            (what_text(e), "address"),
            (delta_text(e.delta), tok),
            (e.result, None if e.ok else "warning"),
            fmt.human(e.heap_total) if e.heap_total is not None else "?",
            fmt.human(e.mmapped_total),
            threshold_text(e.mmap_threshold),
            caller_text(e),
        )
    return t


def backtrace_lines(e: M.BrkEvent) -> List[str]:
    """The frames kept with --bt, one line each, under the event's row."""
    out = []
    for i, fr in enumerate(e.backtrace):
        where = f" at {fr['file']}:{fr['line']}" if fr.get("file") else ""
        out.append(f"      #{i} {fr.get('function') or object_text(fr) or '??'}{where} ({fr['pc']:#x})")
    return out


def threshold_change_lines(events) -> List[str]:
    return [
        f"mmap_threshold changed from {fmt.human(a)} to {fmt.human(b)} (seen at event #{seq})"
        for seq, a, b in M.threshold_changes(events)
    ]


# ---- the lines brkwatch writes ----


def said(text: str) -> str:
    """A line brkwatch writes itself: what a subcommand did, or a note from a hook."""
    return f"brkwatch: {text}"


def stop_line(e: M.BrkEvent) -> str:
    """The line written when --stop stops the program at event e."""
    return said(f"stopped at event {e.seq}: {event_line(e)}")


def cleared_text(n: int) -> str:
    return f"{n} event(s) cleared"


def message_items(text: str, not_used: Sequence[str] = ()) -> List[Item]:
    """What on, off or clear did, and after on why each cheaper way to watch was not used."""
    items: List[Item] = [line(said(text))]
    return items + [line(said(f"not used: {why}")) for why in not_used]


# ---- status ----


def status_body(st: dict, log: M.BrkLog) -> dict:
    """The --json keys of status (and of on, off, clear) after the target's: status, summary."""
    return {"status": st, "summary": log.summary.to_json()}


def status_items(st: dict) -> List[Item]:
    return [line(text) for text in status_lines(st)]


# ---- the log ----


def log_body(log: M.BrkLog, events: Sequence[M.BrkEvent], st: dict) -> dict:
    """The --json keys of log after the target's: the events asked for, and the whole log's
    summary, start, notes, dropped count, status and mmap_threshold changes."""
    return {
        "events": [e.to_json() for e in events],
        "summary": log.summary.to_json(),
        "start_brk": log.start_brk,
        "notes": list(log.notes),
        "dropped": log.dropped,
        "status": st,
        "threshold_changes": [{"seq": s, "old": a, "new": b} for s, a, b in M.threshold_changes(log.events)],
    }


def log_items(
    log: M.BrkLog,
    events: Sequence[M.BrkEvent],
    on: bool,
    kinds: Optional[Sequence[str]] = None,
    width: Optional[int] = None,
) -> Iterator[Item]:
    """The log's notes, the events asked for (each row followed by its frames, the table fitted
    to `width`), the summary, the mmap_threshold changes and how many older events were not
    kept. `kinds`: the --kind values asked for, so an empty answer names them instead of saying
    nothing was recorded."""
    for n in log.notes:
        yield [("note: ", "muted"), (n, None)]
    if not events and log.events and kinds:
        asked = " or ".join(dict.fromkeys(kinds))
        others = ", ".join(f"{k} {n}" for k, n in M.counts_by_kind(log.events).items())
        yield line(
            said(
                f"no {asked} events among the {fmt.plural(len(log.events), 'event')} recorded ({others}); "
                "'brkwatch log' shows them all"
            )
        )
        return
    if not events:
        state = "on" if on else "off ('brkwatch on' starts recording)"
        yield line(said(f"no events recorded; brkwatch is {state}"))
        return
    lines = event_table(events).lines(width)
    yield lines[0]
    for e, row in zip(events, lines[1:]):
        yield row
        for text in backtrace_lines(e):
            yield line(text)
    yield [("summary: ", "title"), (summary_text(log), None)]
    for text in threshold_change_lines(log.events):
        yield line(text)
    if log.dropped:
        yield line(f"({log.dropped} older event(s) not kept)")
