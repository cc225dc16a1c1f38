"""brkwatch's bookkeeping and ELF symbol reading, no gdb."""

import os

import pytest

from gdbext.model import brklog as M
from gdbext.model.elfsyms import file_reader, symbols

B = 0x555555559000


def test_brk_queries_are_not_events():
    assert M.decode_brk(0, B, None) is None  # brk(0): where is the break?
    assert M.decode_brk(B, B, B) is None  # asked for the break it already has


def test_brk_growth_and_shrink():
    e = M.decode_brk(B + 0x21000, B + 0x21000, B)
    assert (e.kind, e.old_brk, e.new_brk, e.delta, e.result) == ("brk", B, B + 0x21000, 0x21000, "ok")
    assert (e.address, e.length, e.requested) == (B, 0x21000, B + 0x21000)
    e = M.decode_brk(B, B, B + 0x21000)
    assert (e.delta, e.address, e.length) == (-0x21000, B, 0x21000)


def test_brk_old_unknown():
    e = M.decode_brk(B + 0x1000, B + 0x1000, None)
    assert e.delta is None and e.old_brk is None and e.address is None and e.ok


def test_refused_brk():
    e = M.decode_brk(B + (100 << 20), B, B)
    assert (e.result, e.delta, e.old_brk, e.new_brk, e.requested) == ("ENOMEM", 0, B, B, B + (100 << 20))
    assert not e.ok
    e = M.decode_brk(B - 0x1000, B, B)  # below the heap's start: the kernel keeps the break
    assert e.result == "refused" and e.delta == 0


def test_syscall_results():
    assert M.syscall_result(0x7F0000000000) == (True, 0x7F0000000000, "ok")
    ok, value, text = M.syscall_result((1 << 64) - 12)
    assert (ok, value, text) == (False, -12, "ENOMEM")
    assert M.syscall_result((1 << 64) - 4096)[0]  # -4096 is an address, not an errno


def test_mmap_decoding():
    assert M.decode_mmap(0, 0x1000, 3, 0x02, 0x7F0000000000) is None  # a file mapping
    e = M.decode_mmap(0, 0x32010, 3, 0x22, 0x7F0000000000)
    assert (e.kind, e.address, e.length, e.delta, e.result) == ("mmap", 0x7F0000000000, 0x33000, 0x33000, "ok")
    assert M.prot_text(e.prot) == "rw-" and M.prot_text(0) == "---"
    e = M.decode_mmap(0, 1 << 40, 3, 0x22, (1 << 64) - 12)
    assert (e.result, e.delta, e.address) == ("ENOMEM", 0, None)
    e = M.decode_munmap(0x7F0000000000, 0x33000, 0)
    assert (e.kind, e.delta, e.address, e.length) == ("munmap", -0x33000, 0x7F0000000000, 0x33000)
    e = M.decode_mremap(0x7F0000000000, 0x33000, 0x50000, 1, 0x7F1000000000)
    assert (e.delta, e.address, e.length, e.old_address, e.old_length) == \
        (0x1D000, 0x7F1000000000, 0x50000, 0x7F0000000000, 0x33000)


def test_file_ranges():
    f = M.FileRanges([(0x1000, 0x3000), (0x5000, 0x6000)])
    assert f.covers(0x1000, 0x3000) and f.covers(0x2000, 0x2800)
    assert not f.covers(0x2000, 0x4000) and not f.covers(0x8000, 0x9000)
    f.remove(0x2000, 0x5800)
    assert f.ranges == [(0x1000, 0x2000), (0x5800, 0x6000)]
    f.add(0x2000, 0x3000)
    assert f.covers(0x1000, 0x3000)
    f.moved(0x1000, 0x3000, 0x9000, 0xB000)
    assert f.covers(0x9000, 0xB000) and not f.covers(0x1000, 0x2000)


def test_alloc_names():
    assert M.alloc_name("__GI___libc_malloc") == "malloc"
    assert M.alloc_name("__libc_calloc") == "calloc"
    assert M.alloc_name("__GI___libc_free") == "free"
    assert M.alloc_name("_int_malloc") is None and M.alloc_name(None) is None
    assert M.describe_alloc({"function": "malloc", "size": 10}) == "malloc(10)"
    assert M.describe_alloc({"function": "free", "size": None, "pointer": 16}) == "free(0x10)"
    assert M.describe_alloc({"function": "free", "size": None}) == "free"


def test_log_running_totals_and_summary():
    log = M.BrkLog()
    log.start_brk = B
    a = log.add(M.decode_brk(B + 0x21000, B + 0x21000, B))
    b = log.add(M.decode_mmap(0, 0x32010, 3, 0x22, 0x7F0000000000))
    c = log.add(M.decode_brk(B + 0x42000, B + 0x42000, B + 0x21000))
    d = log.add(M.decode_munmap(0x7F0000000000, 0x33000, 0))
    e = log.add(M.decode_brk(B + (100 << 20), B + 0x42000, B + 0x42000))
    f = log.add(M.decode_brk(B + 0x10000, B + 0x10000, B + 0x42000))
    assert [x.seq for x in (a, b, c, d, e, f)] == [1, 2, 3, 4, 5, 6]
    assert [x.heap_total for x in (a, b, c, d, e, f)] == [0x21000, 0x21000, 0x42000, 0x42000, 0x42000, 0x10000]
    assert [x.mmapped_total for x in (a, b, c, d, e, f)] == [0, 0x33000, 0x33000, 0, 0, 0]
    s = log.summary
    assert (s.events, s.brk_events, s.map_events, s.failures) == (6, 4, 2, 1)
    assert s.brk_growth == 0x10000 and s.mmapped_growth == 0
    assert s.largest == (2, 0x33000)
    j = s.to_json()
    assert j["net_growth"] == 0x10000 and j["largest_step"] == {"seq": 2, "delta": 0x33000}
    assert [x.seq for x in log.selected(["munmap"])] == [4]
    assert [x.seq for x in log.selected(last=2)] == [5, 6]


def test_log_start_from_first_event_and_clear():
    log = M.BrkLog()
    log.add(M.decode_brk(B + 0x1000, B + 0x1000, B))
    assert log.start_brk == B and log.events[0].heap_total == 0x1000
    log.clear("log cleared at a new run", pid=7)
    assert len(log) == 0 and log.summary.events == 0 and log.notes and log.pid == 7
    assert log.add(M.decode_brk(B + 0x2000, B + 0x2000, B)).seq == 1


def test_log_keeps_the_newest_and_counts_the_rest():
    log = M.BrkLog(limit=3)
    old = B
    for i in range(5):
        log.add(M.decode_brk(old + 0x1000, old + 0x1000, old))
        old += 0x1000
    assert [e.seq for e in log.events] == [3, 4, 5] and log.dropped == 2
    assert log.summary.events == 5 and log.summary.brk_growth == 0x5000


def test_threshold_changes():
    evs = []
    for seq, t in enumerate([None, 0x20000, 0x20000, 0x33000, None, 0x33000], 1):
        e = M.BrkEvent("brk", 0, "ok", mmap_threshold=t)
        e.seq = seq
        evs.append(e)
    assert M.threshold_changes(evs) == [(4, 0x20000, 0x33000)]


def test_json_has_the_contract_keys():
    e = M.decode_mmap(0, 0x1000, 3, 0x22, 0x7F0000000000)
    j = e.to_json()
    for k in ("seq", "thread", "tid", "kind", "old_brk", "new_brk", "address", "length", "delta",
              "result", "caller", "mmap_threshold"):
        assert k in j


LIBC = "/lib/x86_64-linux-gnu/libc.so.6"


@pytest.mark.skipif(not os.path.exists(LIBC), reason="no x86-64 glibc here")
def test_libc_symbols_from_the_file():
    read = file_reader(LIBC)
    syms = symbols(read, ["__curbrk", "brk", "syscall", "mmap", "not_a_symbol"])
    read.close()
    assert {"__curbrk", "brk", "syscall", "mmap"} <= set(syms)
    assert "not_a_symbol" not in syms
    assert syms["__curbrk"][1] == 8 and syms["brk"][1] > 0


def test_symbols_of_a_non_elf():
    assert symbols(lambda off, n: b"\0" * n, ["x"]) == {}
    assert symbols(lambda off, n: b"", ["x"]) == {}
