"""brkwatch's words, options and mapping-call decoding, without gdb: the text the log, the
status and --stop print for events the model decoded."""

from gdbext.model import brklog as M
from gdbext.model.brkoptions import Options
from gdbext.model.brksyscalls import ENOSYS_RAX, MAPPING_CALLS, NR, decode_mapping_call
from gdbext.views import brkwatch as view

B = 0x555555559000
A = 0x7F0000000000


def test_options_text_and_json():
    assert Options().text() == "(none)"
    o = Options(mmap=True, stop=True, bt=3, method="break")
    assert o.text() == "--mmap --stop --bt 3 --method break"
    assert Options(**o.to_json()) == o


def test_delta_text():
    assert view.delta_text(None) == "?"
    assert view.delta_text(0) == "0"
    assert view.delta_text(0x21000) == "+0x21000"
    assert view.delta_text(-0x21000) == "-0x21000"


def test_what_text_for_each_kind():
    assert view.what_text(M.decode_brk(B + 0x21000, B + 0x21000, B)) == f"{B:#x} -> {B + 0x21000:#x}"
    assert view.what_text(M.decode_brk(B + 0x1000, B + 0x1000, None)) == f"? -> {B + 0x1000:#x}"
    refused = M.decode_brk(B + (100 << 20), B, B)
    assert view.what_text(refused) == f"{B:#x} (asked {B + (100 << 20):#x})"
    assert view.what_text(M.decode_mmap(0, 0x32010, 3, 0x22, A)) == f"{A:#x}+0x33000 rw-"
    assert view.what_text(M.decode_mmap(0, 1 << 40, 3, 0x22, (1 << 64) - 12)) == \
        f"?+{1 << 40:#x} rw-"
    assert view.what_text(M.decode_munmap(A, 0x33000, 0)) == f"{A:#x}+0x33000"
    moved = M.decode_mremap(A, 0x33000, 0x50000, 1, A + 0x1000000)
    assert view.what_text(moved) == f"{A:#x}+0x33000 -> {A + 0x1000000:#x}+0x50000"


def test_event_line_names_the_caller():
    e = M.decode_brk(B + 0x21000, B + 0x21000, B)
    assert view.event_line(e) == f"brk {B:#x} -> {B + 0x21000:#x} +0x21000 ok"
    e.caller = {"function": "grow", "file": "g.c", "line": 7, "pc": 0x401000}
    assert view.event_line(e).endswith(" ok in grow")


def test_caller_text():
    e = M.decode_brk(B + 0x21000, B + 0x21000, B)
    assert view.caller_text(e) == "?"
    e.caller = {"function": "grow", "file": "g.c", "line": 7, "pc": 0x401000}
    e.alloc = {"function": "malloc", "size": 200000}
    assert view.caller_text(e) == f"grow (g.c:7) via {M.describe_alloc(e.alloc)}"
    e.caller = {"function": None, "file": None, "line": None, "pc": 0x401000}
    e.alloc = None
    assert view.caller_text(e) == "0x401000"
    e.caller, e.via = None, ["__brk", "__sbrk", "sysmalloc", "_int_malloc", "malloc", "start"]
    assert view.caller_text(e) == "(libc: start)"  # the frame after the malloc call
    # glibc 2.43: malloc's frame is gone (a tail call); the event names the frame that runs it
    e.via = ["__brk", "sysmalloc", "_int_malloc", "__libc_malloc2", "_IO_file_doallocate", "start"]
    e.alloc = {"function": "malloc", "size": None, "frame": "__libc_malloc2"}
    assert view.caller_text(e) == "(libc: _IO_file_doallocate) via malloc"
    e.alloc = None
    e.via, e.source = ["syscall"], "syscall()"
    assert view.caller_text(e) == "(libc: syscall) via syscall()"


def test_status_lines():
    st = {"on": True, "options": Options(mmap=True).to_json(), "method": "watch",
          "hooks": "hardware watchpoint", "waiting": None, "not_used": ["syscall: no"],
          "events": 3, "kept": 2, "pid": 42, "inferior": 1, "notes": ["n1"],
          "threshold_source": "mp_ from libc's debug info", "errors": 1, "last_error": "E: x"}
    assert view.status_lines(st) == [
        "brkwatch is on; options: --mmap",
        "  watching with: hardware watchpoint",
        "  not used: syscall: no",
        "  3 event(s) (2 kept), process 42 (inferior 1); the log is cleared at a new run",
        "  mmap_threshold read from mp_ from libc's debug info",
        "  note: n1",
        "  1 event(s) could not be read; last: E: x"]
    st.update(method=None, waiting="libc is not loaded yet", not_used=[], kept=3, pid=None,
              notes=[], threshold_source=None, errors=0)
    assert view.status_lines(st)[1:] == [
        "  not armed: libc is not loaded yet",
        "  3 event(s), no process watched yet (inferior 1); the log is cleared at a new run"]


def _log_of(*events):
    log = M.BrkLog()
    for e in events:
        log.add(e)
    return log


def test_summary_and_table():
    assert view.summary_text(M.BrkLog()) == "no events"
    grow = M.decode_brk(B + 0x21000, B + 0x21000, B)
    grow.thread, grow.tid, grow.mmap_threshold = 1, 42, 128 * 1024
    refused = M.decode_brk(B + (100 << 20), B + 0x21000, B + 0x21000)
    refused.thread, refused.tid = 1, 42
    log = _log_of(grow, refused)
    text = view.summary_text(log)
    assert text.startswith("2 event(s) (brk 2); net growth +0x21000 (")
    assert "largest step #1 +0x21000" in text and text.endswith("; 1 failed")
    lines = view.event_table(log.events).lines()
    assert len(lines) == 3
    header = "".join(t for t, _ in lines[0])
    assert header.split() == ["#", "thread", "kind", "change", "delta", "result", "heap", "mmapped",
                              "threshold", "caller"]
    row = "".join(t for t, _ in lines[2])
    assert "1 (42)" in row and "ENOMEM" in row and view.what_text(refused) in row
    assert ("ENOMEM", "warning") in lines[2]


def test_backtrace_and_threshold_change_lines():
    e = M.decode_brk(B + 0x21000, B + 0x21000, B)
    e.backtrace = [{"function": "grow", "file": "g.c", "line": 7, "pc": 0x401000},
                   {"function": None, "file": None, "line": None, "pc": 0x401100}]
    assert view.backtrace_lines(e) == ["      #0 grow at g.c:7 (0x401000)", "      #1 ?? (0x401100)"]
    a = M.decode_mmap(0, 0x32010, 3, 0x22, A)
    a.mmap_threshold = 128 * 1024
    b = M.decode_mmap(0, 0x32010, 3, 0x22, A + 0x100000)
    b.mmap_threshold = 256 * 1024
    log = _log_of(a, b)
    assert view.threshold_change_lines(log.events) == [
        f"mmap_threshold changed from {view.fmt.human(128 * 1024)} to {view.fmt.human(256 * 1024)} "
        "(seen at event #2)"]


def test_mapping_calls_leave_file_mappings_out():
    files = M.FileRanges()
    assert NR["brk"] not in MAPPING_CALLS and ENOSYS_RAX == (1 << 64) - 38
    assert decode_mapping_call(NR["mmap"], [0, 0x1000, 1, 0x02, 3, 0], A, files) is None
    assert files.covers(A, A + 0x1000)
    assert decode_mapping_call(NR["munmap"], [A, 0x1000, 0, 0, 0, 0], 0, files) is None
    assert not files.covers(A, A + 0x1000)
    e = decode_mapping_call(NR["mmap"], [0, 0x32010, 3, 0x22, -1 & (1 << 64) - 1, 0], A, files)
    assert (e.kind, e.address, e.length) == ("mmap", A, 0x33000)
    e = decode_mapping_call(NR["munmap"], [A, 0x33000, 0, 0, 0, 0], 0, files)
    assert (e.kind, e.delta) == ("munmap", -0x33000)


def test_mremap_of_a_file_mapping_moves_it():
    files = M.FileRanges([(A, A + 0x2000)])
    assert decode_mapping_call(NR["mremap"], [A, 0x2000, 0x4000, 1, 0, 0], A + 0x100000, files) is None
    assert files.covers(A + 0x100000, A + 0x104000) and not files.covers(A, A + 0x1000)
    e = decode_mapping_call(NR["mremap"], [A + 0x200000, 0x2000, 0x4000, 1, 0, 0], A + 0x300000, files)
    assert (e.kind, e.delta, e.address) == ("mremap", 0x2000, A + 0x300000)
    assert decode_mapping_call(NR["brk"], [B, 0, 0, 0, 0, 0], B, files) is None
