"""install.sh and ~/.gdbinit (issue 12, items 1 and 2): the source line is added in place, without
gluing it to a last line that has no newline, another clone's line is replaced, and --uninstall
gives back the file byte for byte, keeping a symlink and its mode."""

import os
import shutil
import stat
import subprocess

import pytest

from tests.harness import LOADER

LINE = f"source {LOADER}"

ORIGINALS = [
    b"set history save on",  # no final newline: the line was glued to it
    b"set history save on\n",
    b"set pagination off\n\n# the end\n",
    b"# only a comment",
    b"",  # an empty file stays an empty file
]


def _gdb_with_home(home, *cmds):
    """gdb as the user starts it: reading $HOME/.gdbinit (no -nx)."""
    argv = [shutil.which("gdb") or "gdb", "-q", "-batch"]
    for c in cmds:
        argv += ["-ex", c]
    return subprocess.run(argv, env=dict(os.environ, HOME=str(home)), capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_a_last_line_without_newline_is_not_glued_to(install, home):
    rc = home / ".gdbinit"
    rc.write_bytes(b"set history save on")
    install("--quiet")
    assert rc.read_bytes().split(b"\n") == [b"set history save on", LINE.encode()]
    p = _gdb_with_home(home, "show history save", "help gdbext")
    assert p.stderr == "", p.stderr
    assert "Saving of the history record on exit is on" in p.stdout, p.stdout
    assert "vmmap" in p.stdout, p.stdout
    p = install("--uninstall")
    assert "nothing to remove" not in p.stdout, p.stdout
    assert rc.read_bytes() == b"set history save on"


@pytest.mark.parametrize("original", ORIGINALS, ids=repr)
def test_install_then_uninstall_restores_the_file_byte_for_byte(install, home, original):
    rc = home / ".gdbinit"
    rc.write_bytes(original)
    install("--quiet")
    lines = rc.read_bytes().split(b"\n")
    assert lines.count(LINE.encode()) == 1, lines
    install("--quiet")  # again: nothing changes
    assert rc.read_bytes().split(b"\n") == lines
    p = install("--uninstall")
    assert "removed" in p.stdout, p.stdout
    assert rc.read_bytes() == original


def test_uninstall_removes_a_gdbinit_that_install_created(install, home):
    install("--quiet")
    assert (home / ".gdbinit").read_bytes() == LINE.encode() + b"\n"
    install("--uninstall")
    assert not os.path.lexists(home / ".gdbinit")


def test_a_symlinked_gdbinit_stays_a_link_and_keeps_its_mode(install, home, tmp_path):
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "gdbinit"
    original = b"set pagination off\nset history save on\n"
    real.write_bytes(original)
    os.chmod(real, 0o600)
    os.symlink(real, home / ".gdbinit")
    install("--quiet")
    assert os.path.islink(home / ".gdbinit")
    assert real.read_bytes() == original + LINE.encode() + b"\n"
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o600
    install("--uninstall")
    assert os.path.islink(home / ".gdbinit") and os.readlink(home / ".gdbinit") == str(real)
    assert real.read_bytes() == original
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o600


def test_uninstall_repairs_a_line_an_earlier_install_glued(install, home):
    """What the old install.sh left: its line appended to a last line without a newline."""
    rc = home / ".gdbinit"
    rc.write_bytes(b"set confirm off\nset history save on" + LINE.encode() + b"\n")
    p = install("--uninstall")
    assert "nothing to remove" not in p.stdout, p.stdout
    assert rc.read_bytes() == b"set confirm off\nset history save on"


def test_another_clones_line_is_replaced_in_place_and_said(install, home):
    rc = home / ".gdbinit"
    old = "source /home/someone/old-clone/gdbext/gdbinit.py"
    rc.write_text(f"set confirm off\n{old}\nset pagination off\n")
    p = install("--quiet")
    assert rc.read_text() == f"set confirm off\n{LINE}\nset pagination off\n"
    assert "replaced" in p.stdout and old in p.stdout and LINE in p.stdout, p.stdout


def test_uninstall_leaves_another_clones_line_and_says_so(install, home):
    rc = home / ".gdbinit"
    old = b"source /home/someone/old-clone/gdbext/gdbinit.py\n"
    rc.write_bytes(old)
    p = install("--uninstall")
    assert rc.read_bytes() == old
    assert "old-clone" in p.stdout, p.stdout


def test_a_line_naming_this_clone_another_way_counts_as_installed(install, home, tmp_path):
    link = tmp_path / "via-link"
    os.symlink(os.path.dirname(os.path.dirname(LOADER)), link)
    rc = home / ".gdbinit"
    original = f"source {link}/gdbext/gdbinit.py\n".encode()
    rc.write_bytes(original)
    p = install()
    assert rc.read_bytes() == original
    assert "already" in p.stdout, p.stdout


def test_no_gdbinit_quiet_still_prints_the_line_to_add(install, home):
    p = install("--no-gdbinit", "--quiet")
    assert LINE in p.stdout, p.stdout
    assert len(p.stdout.splitlines()) == 1, p.stdout
    assert not os.path.lexists(home / ".gdbinit")
