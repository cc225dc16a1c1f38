"""brkwatch's views without gdb, on model events (model/brklog.py) and a status as the watcher
gives it: the --stop line and notes the watcher writes, what on/off/clear print, the status and
log documents and the log's lines (test_brkwatch_view.py has the words they are made of)."""

import json

from gdbext.model import brklog as M
from gdbext.model.brkoptions import Options
from gdbext.render import fmt
from gdbext.views import brkwatch as view
from gdbext.views import plain_text

B = 0x555555559000
A = 0x7F0000000000

STATUS = {"on": True, "options": Options(mmap=True).to_json(), "method": "watch",
          "hooks": "hardware watchpoint", "waiting": None, "not_used": [], "events": 0, "kept": 0,
          "pid": 42, "inferior": 1, "notes": [], "threshold_source": None, "errors": 0,
          "last_error": None}


def _event(e, thread=1, tid=42, threshold=128 * 1024):
    e.thread, e.tid, e.mmap_threshold = thread, tid, threshold
    return e


def _log(*events, limit=200000):
    log = M.BrkLog(limit)
    log.start_brk = B
    for e in events:
        log.add(e)
    return log


def _grow(old=B, by=0x21000, **kw):
    return _event(M.decode_brk(old + by, old + by, old), **kw)


def test_stop_line_and_notes_the_watcher_writes():
    log = _log(_grow(), _grow(B + 0x21000))
    e = log.events[-1]
    assert view.stop_line(e) == f"brkwatch: stopped at event 2: {view.event_line(e)}"
    assert view.stop_line(e) == f"brkwatch: stopped at event 2: brk {B + 0x21000:#x} -> {B + 0x42000:#x} +0x21000 ok"
    e.caller = {"function": "grow", "file": "g.c", "line": 7, "pc": 0x401000}
    assert view.stop_line(e).endswith(" ok in grow")
    assert view.said("process 7 forked") == "brkwatch: process 7 forked"


def test_what_on_off_and_clear_print():
    items = view.message_items("on (hardware watchpoint)", ["watch: no __curbrk symbol in libc"])
    assert items == [[("brkwatch: on (hardware watchpoint)", None)],
                     [("brkwatch: not used: watch: no __curbrk symbol in libc", None)]]
    assert view.message_items("already off") == [[("brkwatch: already off", None)]]
    assert view.message_items(view.cleared_text(3)) == [[("brkwatch: 3 event(s) cleared", None)]]


def test_status_document_and_lines():
    log = _log(_grow())
    st = dict(STATUS, events=1, kept=1)
    body = view.status_body(st, log)
    assert list(body) == ["status", "summary"]
    assert body["status"] is st and body["summary"] == log.summary.to_json()
    assert body["summary"]["events"] == 1 and body["summary"]["net_brk"] == 0x21000
    json.dumps(body)
    assert view.status_items(st) == [[(text, None)] for text in view.status_lines(st)]
    assert plain_text(view.status_items(st)).splitlines()[0] == "brkwatch is on; options: --mmap"


def test_log_document():
    grow = _grow()
    mapped = _event(M.decode_mmap(0, 0x32010, 3, 0x22, A), threshold=256 * 1024)
    refused = _grow(B + 0x21000, 100 << 20, threshold=256 * 1024)
    refused.result = "ENOMEM"
    log = _log(grow, mapped, refused)
    log.notes.append("process 42 exited with code 0")
    body = view.log_body(log, [mapped], STATUS)
    assert list(body) == ["events", "summary", "start_brk", "notes", "dropped", "status",
                          "threshold_changes"]
    assert body["events"] == [mapped.to_json()]  # the events asked for ...
    assert body["summary"] == log.summary.to_json() and body["summary"]["events"] == 3  # ... the log's
    assert body["start_brk"] == B and body["notes"] == ["process 42 exited with code 0"]
    assert body["dropped"] == 0 and body["status"] is STATUS
    assert body["threshold_changes"] == [{"seq": 2, "old": 128 * 1024, "new": 256 * 1024}]
    assert body["notes"] is not log.notes  # a copy: later notes do not change a document
    json.dumps(body)


def test_log_lines():
    grow = _grow()
    grow.backtrace = [{"function": "grow", "file": "g.c", "line": 7, "pc": 0x401000},
                      {"function": None, "file": None, "line": None, "pc": 0x401100}]
    mapped = _event(M.decode_mmap(0, 0x32010, 3, 0x22, A), threshold=256 * 1024)
    log = _log(grow, mapped)
    log.notes.append("a note")
    items = list(view.log_items(log, list(log.events), on=True))
    table = view.event_table(log.events).lines()
    assert items[0] == [("note: ", "muted"), ("a note", None)]
    # the table's header, each row followed by its frames
    assert items[1:6] == [table[0], table[1], [("      #0 grow at g.c:7 (0x401000)", None)],
                          [("      #1 ?? (0x401100)", None)], table[2]]
    assert items[6] == [("summary: ", "title"), (view.summary_text(log), None)]
    assert items[7:] == [[(f"mmap_threshold changed from {fmt.human(128 * 1024)} to "
                           f"{fmt.human(256 * 1024)} (seen at event #2)", None)]]
    # the events asked for only; the summary and changes stay the whole log's
    some = list(view.log_items(log, [mapped], on=True))
    assert len(some) == 5 and some[2] == view.event_table([mapped]).lines()[1]
    assert some[3] == items[6]


def test_log_lines_when_empty_and_when_events_were_dropped():
    empty = M.BrkLog()
    assert list(view.log_items(empty, [], on=True)) == [
        [("brkwatch: no events recorded; brkwatch is on", None)]]
    empty.notes.append("log cleared at a new run")
    assert list(view.log_items(empty, [], on=False)) == [
        [("note: ", "muted"), ("log cleared at a new run", None)],
        [("brkwatch: no events recorded; brkwatch is off ('brkwatch on' starts recording)", None)]]
    log = _log(_grow(), _grow(B + 0x21000), _grow(B + 0x42000), limit=2)
    assert log.dropped == 1 and len(log) == 2
    items = list(view.log_items(log, list(log.events), on=False))
    assert items[-1] == [("(1 older event(s) not kept)", None)]
    assert view.log_body(log, list(log.events), STATUS)["dropped"] == 1
    text = plain_text(items)
    assert "#  thread" in text and "\n2  1 (42)" in text and "\n3  1 (42)" in text
