"""The kind of target from gdb's words (gdb before 11 has no Inferior.connection), no gdb."""

import pytest

from gdbext.model.targetkind import parse_info_target, parse_target_stack

# gdb 10.1 (Debian bullseye) on a core file of a threaded program
GDB10_CORE = """The current target stack is:
  - multi-thread (multi-threaded child process.)
  - core (Local core dump file)
  - exec (Local exec file)
  - None (None)
"""
GDB13_REMOTE = """The current target stack is:
  - remote (Remote target using gdb-specific protocol)
  - exec (Local exec file)
  - None (None)
"""


@pytest.mark.parametrize("text, kind", [
    (GDB10_CORE, "core"),
    (GDB13_REMOTE, "remote"),
    (GDB13_REMOTE.replace("remote (Remote", "extended-remote (Extended remote"), "extended-remote"),
    ("The current target stack is:\n  - multi-thread (multi-threaded child process.)\n"
     "  - native (Native process)\n  - exec (Local exec file)\n  - None (None)\n", "native"),
    ("The current target stack is:\n  - record-full (Process record and replay target)\n"
     "  - native (Native process)\n  - None (None)\n", "native"),
    ("The current target stack is:\n  - exec (Local exec file)\n  - None (None)\n", None),
    ("The current target stack is:\n  - None (None)\n", None),
])
def test_target_stack(text, kind):
    assert parse_target_stack(text) == kind


def test_target_stack_unknown_text_is_an_error_not_a_kind():
    with pytest.raises(ValueError):
        parse_target_stack("Undefined maintenance print command")
    with pytest.raises(ValueError):
        parse_target_stack("")


@pytest.mark.parametrize("text, kind", [
    ('Symbols from "/bin/prog".\nLocal core dump file:\n\t`/tmp/x.core\', file type '
     'elf64-x86-64.\n\t0x0000555555554000 - 0x0000555555555000 is load1\nLocal exec file:\n'
     "\t`/bin/prog', file type elf64-x86-64.\n", "core"),
    ('Symbols from "/bin/prog".\nNative process:\n\tUsing the running image of child process '
     "12.\n\tWhile running this, GDB does not access memory from...\nLocal exec file:\n", "native"),
    ('Symbols from "/bin/prog".\nRemote target using gdb-specific protocol:\n\t`/bin/prog\', '
     "file type elf64-x86-64.\nLocal exec file:\n", "remote"),
    ('Symbols from "/bin/prog".\nRemote serial target in gdb-specific protocol:\n', "remote"),
    ('Symbols from "/bin/prog".\nExtended remote serial target in gdb-specific protocol:\n',
     "extended-remote"),
    # a path that merely mentions a core or a remote is not a target
    ('Symbols from "/srv/remote/core file".\nLocal exec file:\n\t`/srv/remote/core file\', '
     "file type elf64-x86-64.\n\t0x1000 - 0x2000 is .text in /srv/remote/libcore file.so\n", None),
])
def test_info_target(text, kind):
    assert parse_info_target(text) == kind
