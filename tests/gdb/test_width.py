"""Tables fit gdb's width (issue 12 item 10): with `set width 80` (and 120) every line of every
command's table fits, and each row still parses into whole fields that agree with the command's
own --json; addresses shortened to a header prefix plus a cell still name the chunk; --json is
never paged screen by screen. With `set width unlimited` the output is as before (the other
tests run that way)."""

import json
import re

import pytest

from tests.harness import assert_clean, demo

QUIET = ("set print thread-events off",)
HEX = r"(?:0x)?[0-9a-f]+"


def fits(text: str, width: int):
    assert_clean(text)
    for line in text.splitlines():
        assert len(line) <= width, f"{len(line)} > {width}: {line!r}\n{text}"


def prefix(header: str, column: str) -> str:
    """The high digits a header prints once for its column's addresses: `arena (0x7fff…)`."""
    m = re.search(re.escape(column) + r" \(0x([0-9a-f]+)…\)", header)
    return m.group(1) if m else ""


def address(cell: str, high: str) -> int:
    """A cell's address, whole again: `0x55555557a000`, or a header's prefix + `f7fa8c60`."""
    if high:
        assert not cell.startswith("0x"), cell
        return int(high + cell, 16)
    assert cell.startswith("0x"), cell
    return int(cell, 16)


def check_vmmap(g, width):
    regions = g.json("vmmap --json")["regions"]
    text = g.cmd("vmmap")
    fits(text, width)
    lines = text.splitlines()
    header = lines[0]
    assert header.startswith("start"), text
    rows = []
    for line in lines[1 : 1 + len(regions)]:
        m = re.match(rf"({HEX})\s+({HEX})\s+(.*)$", line)
        assert m, line
        rows.append((address(m.group(1), prefix(header, "start")), address(m.group(2), prefix(header, "end"))))
        rest = m.group(3).split()
        r = regions[len(rows) - 1]
        assert r["kind"] in rest, line
        if "perms" in header:
            assert r["perms"] in rest, line
    assert rows == [(r["start"], r["end"]) for r in regions]
    summary = g.cmd("vmmap --summary")
    fits(summary, width)
    for line in summary.splitlines():
        if line and not line.startswith(("by ", "~", "resident")):
            assert re.match(r"^[\w-]+\s+\d+\s+0x[0-9a-f]+ \([\d.]+ \w+\)", line), line


def check_threadstacks(g, width):
    threads = g.json("threadstacks --json")["threads"]
    text = g.cmd("threadstacks")
    fits(text, width)
    lines = text.splitlines()
    header = lines[0]
    high = prefix(header, "stack [low, high)")
    for t, line in zip(threads, lines[1:]):
        m = re.match(rf"\s*(\d+)\s+.*?\s({HEX})-({HEX})\s", line)
        assert m, line
        assert int(m.group(1)) == t["num"]
        assert (address(m.group(2), high), address(m.group(3), high)) == (t["low"], t["high"])
        last = line.split()[-1]  # the function, whole or cut at its end
        assert last == t["function"] or last.endswith("…") and t["function"].startswith(last[:-1]), line


def heapchunks_rows(text):
    """(address, size) of every row of every table heapchunks printed."""
    rows, high = [], None
    for line in text.splitlines():
        if line.startswith("address"):
            high = prefix(line, "address")
            continue
        m = re.match(rf"({HEX})\s+(0x[0-9a-f]+)\s", line)
        if high is not None and m:
            rows.append((address(m.group(1), high), int(m.group(2), 16)))
        elif not m:
            high = None
    return rows


def check_heapchunks(g, width):
    doc = g.json("heapchunks --json")
    truth = [(c["address"], c["size"]) for a in doc["arenas"] for c in a["chunks"]]
    truth += [(c["address"], c["size"]) for c in doc["mmapped"]]
    text = g.cmd("heapchunks")
    fits(text, width)
    rows = heapchunks_rows(text)
    assert rows == truth
    return rows


def check_arenas(g, width):
    doc = g.json("arenas --json")
    for cmd in ("arenas", "arenas --walk"):
        text = g.cmd(cmd)
        fits(text, width)
        lines = text.splitlines()
        k = next(i for i, x in enumerate(lines) if x.startswith("#"))
        high = prefix(lines[k], "arena")
        got = []
        for line in lines[k + 1 : k + 1 + len(doc["arenas"])]:
            m = re.match(rf"(\d+)\s+({HEX})(?: main)?\s", line)
            assert m, line
            got.append((int(m.group(1)), address(m.group(2), high)))
        assert got == [(a["number"], a["address"]) for a in doc["arenas"]]
        # the column is as wide as this glibc's longest malloc_par field (2.44 has no
        # tcache_unsorted_limit)
        k = next((i for i, x in enumerate(lines) if re.fullmatch(r"field +value", x)), None)
        assert k is not None, text
        for line in lines[k + 1 :]:
            if not re.match(r"\w+\s{2,}\S", line):
                break
            assert line.split()[0] in doc["mp"], line


def check_bins(g, width):
    doc = g.json("bins --json")
    text = g.cmd("bins")
    fits(text, width)
    assert "…" not in text
    words = set(text.split())
    lists = [b for t in doc["tcache"] for b in t["bins"]]
    lists += doc["fastbins"] + doc["unsorted"] + doc["smallbins"] + doc["largebins"]
    for b in lists:
        for c in b["chunks"][:7]:
            assert f"0x{c:016x}" in words, (hex(c), text)


def check_chunk(g, width, rows):
    """A chunk address copied from the fitted heapchunks table names that chunk."""
    for addr, size in (rows[3], rows[-1]):
        text = g.cmd(f"chunk {addr:#x}")
        fits(text, width)
        assert f"chunk 0x{addr:016x}" in text.splitlines()[1], text
        assert f"size {size:#x}" in text or f"size        {size:#x}" in text or hex(size) in text


@pytest.mark.parametrize("width", [80, 120])
def test_heap_and_stack_tables_fit_the_width(gdb_session, width):
    g = gdb_session(demo("malloc_sizes"), "basic", extra_init=QUIET)
    g.run_to("heap")
    g.cmd(f"set width {width}")
    check_vmmap(g, width)
    check_threadstacks(g, width)
    rows = check_heapchunks(g, width)
    check_arenas(g, width)
    check_bins(g, width)
    check_chunk(g, width, rows)


@pytest.mark.parametrize("width", [80, 120])
def test_brkwatch_log_fits_the_width(gdb_session, width):
    g = gdb_session(demo("sbrk_grow"), "grow", extra_init=QUIET)
    g.cmd("brkwatch on")
    g.run_to("shrunk")
    events = g.json("brkwatch log --json")["events"]
    g.cmd(f"set width {width}")
    text = g.cmd("brkwatch log")
    fits(text, width)
    lines = text.splitlines()
    assert lines[0].startswith("#")
    for e, line in zip(events, lines[1:]):
        m = re.match(r"\s*(\d+)\s+\d+ \(\d+\)\s+(\w+)\s+(0x[0-9a-f]+) -> (0x[0-9a-f]+)\s", line)
        assert m, line
        assert (int(m.group(1)), m.group(2)) == (e["seq"], e["kind"])
        assert (int(m.group(3), 16), int(m.group(4), 16)) == (e["old_brk"], e["new_brk"])


def test_pipe_and_to_string_get_full_tables(gdb_session):
    """Output that is not for the screen stays as it always was, whatever `set width` says."""
    g = gdb_session(demo("malloc_sizes"), "basic", extra_init=QUIET)
    g.run_to("heap")
    g.cmd("set width unlimited")
    full = g.cmd("vmmap").splitlines()
    assert max(map(len, full)) > 80
    g.cmd("set width 80")
    assert g.cmd("pipe vmmap | cat").splitlines() == full
    out = g.cmd('python print(gdb.execute("vmmap", to_string=True), end="")')
    assert out.splitlines() == full


def test_json_is_not_paged(gdb_session):
    """With a 10-line page, a large --json document comes out whole, with no --Type <RET>
    prompt, and the page size is as it was after."""
    g = gdb_session(demo("malloc_sizes"), "basic", extra_init=QUIET)
    g.run_to("heap")
    g.cmd("set width 80")
    g.cmd("set height 10")
    g.cmd("set pagination on")
    for cmd in ("heapchunks --json", "vmmap --json", "bins --json"):
        g.child.sendline(cmd)
        i = g.child.expect_exact(["--Type <RET>", "GDBEXT-TEST> "], timeout=g.timeout)
        if i == 0:
            g.child.sendline("c")
            g.child.expect_exact("GDBEXT-TEST> ")
        assert i == 1, f"{cmd} was paged"
        text = g.child.before.replace("\r\n", "\n")
        assert len(text) > 10 * 80  # more than a page of 10 lines of 80 columns
        assert json.loads(text)["command"] == cmd.split()[0]  # whole, no line break inside
    assert "is 10." in g.cmd("show height")
    # and a table still pages, as gdb's own output does
    g.child.sendline("vmmap")
    assert g.child.expect_exact(["--Type <RET>", "GDBEXT-TEST> "], timeout=g.timeout) == 0
    g.child.sendline("q")
    g.child.expect_exact("GDBEXT-TEST> ")
