"""Long work shows progress on a terminal, and only there (issue 12, item 14).

One million chunks (`malloc_sizes many 1000000`): walking them takes a few seconds, so
`heapchunks` draws a progress line on stderr (`\\r\\x1b[K` and the text), erases it before any
output and at the end; with --json, inside `pipe`, under `gdb -batch` and in
`gdb.execute(..., to_string=True)` no progress text appears at all.  The model is dropped
before each command, so each one walks the heap again."""

import re
import shutil
import time

import pexpect
import pytest

from tests.harness import LOADER, PROMPT, Gdb, demo, gdb_version

N = 1_000_000
ERASE = "\r\x1b[K"
DRAWN = re.compile(r"\r\x1b\[K(walking the heap|walking the free lists|listing chunks): [\d.,]+ ")
COMMAND = "heapchunks --state used --limit 3"
FORGET = (
    "python import gdbext.inferior.process as P, gdbext.inferior.memory as M; "
    "P._facts_cache.clear(); M._invalidate()"
)


@pytest.fixture(scope="module")
def big(demos):
    g = Gdb(demo("malloc_sizes"), ("many", N), timeout=600, progress=True)
    try:
        g.run_to("heap", timeout=600)
        yield g
    finally:
        g.close()


def fresh(g, command: str) -> str:
    g.cmd(FORGET)
    g.child.sendline(command)  # the raw text: the harness's cmd keeps \r only inside lines
    g.child.expect_exact(PROMPT, timeout=600)
    return g.child.before


def test_set_gdbext_progress_off_hides_the_line(big):
    big.cmd("set gdbext progress off")
    try:
        text = fresh(big, COMMAND)
    finally:
        big.cmd("set gdbext progress on")
    assert "\x1b[K" not in text and "mallinfo2:" in text, repr(text[:2000])
    assert "whether a long command" in big.cmd("show gdbext progress")


def test_a_long_command_draws_progress_and_erases_it(big):
    text = fresh(big, COMMAND)
    drawn = DRAWN.findall(text)
    assert "walking the heap" in drawn, repr(text[:2000])
    m = re.search(r"walking the heap: [\d.]+ MiB of [\d.]+ MiB \(\d+%\), [\d.]+ (KiB|MiB|GiB)/s", text)
    assert m, repr(text[:2000])
    # Every drawn line is erased before the next output and at the end: what the command
    # writes never lands after progress text.
    for k in (m.start() for m in DRAWN.finditer(text)):
        rest = text[k + 1 :]
        nxt = rest.find("\r\x1b[K")
        assert nxt >= 0, repr(text[k : k + 300])
        assert "\n" not in rest[:nxt], repr(text[k : k + 300])
    assert "\x1b[K" not in text[text.rfind(ERASE) + len(ERASE):]
    assert "mallinfo2:" in text


def test_no_progress_with_json(big):
    text = fresh(big, COMMAND.replace("heapchunks", "heapchunks --json"))
    assert "\x1b" not in text and '"command"' in text


def test_no_progress_inside_pipe(big):
    text = fresh(big, f"pipe {COMMAND} | wc -l")
    assert "\x1b" not in text and re.search(r"^\s*\d+\s*$", text.strip(), re.M), repr(text[-500:])


def test_no_progress_in_to_string(big):
    text = fresh(big, f"python s = gdb.execute({COMMAND!r}, to_string=True); print(repr(s[-200:]))")
    assert "\x1b" not in text and "mallinfo2" in text, repr(text[-500:])


def test_no_progress_with_logging_redirected(big, tmp_path):
    if gdb_version() < (12, 0):
        pytest.skip("known gap: gdb 10 and 11 have no 'logging enabled' setting, and the progress "
                    "line still shows with set logging redirect on there")
    log = tmp_path / "gdb.log"
    big.cmd(f"set logging file {log}")
    big.cmd("set logging redirect on")
    big.cmd("set logging enabled on")
    try:
        text = fresh(big, COMMAND)
    finally:
        big.cmd("set logging enabled off")
        big.cmd("set logging redirect off")
    assert "\x1b" not in text and "walking the heap" not in text, repr(text[-500:])
    logged = log.read_text(errors="replace")
    assert "mallinfo2:" in logged and "\x1b" not in logged


def test_ctrl_c_is_instant_and_erases_the_line(big):
    big.cmd(FORGET)
    big.child.sendline(COMMAND)
    big.child.expect("walking the heap: ", timeout=600)
    t = time.monotonic()
    big.child.sendintr()
    big.child.expect_exact(PROMPT, timeout=60)
    took = time.monotonic() - t
    text = big.child.before
    assert took < 2.0, took
    assert "heapchunks: interrupted" in text, repr(text[-500:])
    assert text[: text.find("heapchunks: interrupted")].endswith(ERASE), repr(text[-500:])
    # and the next command still works
    assert "mallinfo2:" in big.cmd(COMMAND, timeout=600)


def test_no_progress_under_gdb_batch(demos):
    argv = ["-nx", "-batch", "-iex", "set pagination off", "-iex", "set style enabled off",
            "-ex", f"source {LOADER}", "-ex", "break gdbext_stop", "-ex", f"run many {N} > /dev/null",
            "-ex", COMMAND, demo("malloc_sizes")]
    child = pexpect.spawn(shutil.which("gdb") or "gdb", argv, encoding="utf-8", codec_errors="replace",
                          timeout=600, dimensions=(50, 200))
    child.expect(pexpect.EOF, timeout=600)
    text = child.before
    assert "mallinfo2:" in text, repr(text[-1000:])
    assert "\x1b" not in text and "walking the heap" not in text
