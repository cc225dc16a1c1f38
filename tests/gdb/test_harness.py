"""The harness's one retry: a first `run` that hangs right after "Starting program:" is logged
and run again in a fresh gdb with the same commands; anything else that times out still fails."""

import os

import pexpect
import pytest

from tests.harness import Gdb


def test_a_start_that_hangs_once_is_run_again(tmp_path):
    mark = tmp_path / "started-once"
    fifo = tmp_path / "never-written"
    os.mkfifo(fifo)
    script = tmp_path / "start.sh"  # only builtins: no fork or exec for gdb to announce
    script.write_text(f"test -e {mark} && echo second-start || {{ : > {mark}; read x < {fifo}; }}\n")
    g = Gdb("/bin/sh", [script], load=False, timeout=3)
    try:
        g.cmd("set startup-with-shell off")
        text = g.cmd("run", timeout=3)
        assert g.restarted and "second-start" in text and "exited normally" in text, text
        assert g.sent == ["set startup-with-shell off", "run"]  # replayed, then sent once more
        assert "is off" in g.cmd("show startup-with-shell")  # the new gdb has it too
    finally:
        g.close()


def test_a_start_that_hangs_twice_fails(tmp_path):
    g = Gdb("/bin/sleep", ["600"], load=False, timeout=2)
    try:
        with pytest.raises(pexpect.TIMEOUT):
            g.cmd("run")
        assert g.restarted
    finally:
        g.close()


def test_a_later_command_that_hangs_is_not_retried():
    g = Gdb("/bin/sleep", ["600"], load=False, timeout=2)
    try:
        g.cmd("starti")
        g.child.sendline("continue")  # runs on: times out, and no restart
        with pytest.raises(pexpect.TIMEOUT):
            g._expect_prompt(2)
        assert not g._hung_at_start("continue") and not g.restarted
    finally:
        g.child.sendintr()
        g.close()
