"""Which kind of target gdb runs on, read from gdb's own words: gdb before 11 has no
`Inferior.connection` to ask."""

import re
from typing import Optional

# `maint print target-stack` names every target pushed, top first, e.g. "  - multi-thread
# (multi-threaded child process.)", "  - core (Local core dump file)", "  - exec (Local exec
# file)", "  - None (None)".  These names sit above or below the process stratum (threads,
# record, the executable, the dummy); the first other name is the process target.
_NOT_PROCESS_TARGETS = frozenset(
    {
        "None",
        "exec",
        "multi-thread",
        "ravenscar",
        "aix-threads",
        "bsd-uthreads",
        "sol-threads",
        "record-full",
        "record-core",
        "record-btrace",
    }
)
_TARGET_STACK_ITEM = re.compile(r"^\s*-\s+(\S+)\s*(?:\(|$)", re.M)


def parse_target_stack(text: str) -> Optional[str]:
    """The process target's name from `maint print target-stack`, or None when none is pushed
    (nothing runs): "native", "core", "remote", "extended-remote", ...  ValueError when the
    text lists no target at all (not the output this parser knows)."""
    names = _TARGET_STACK_ITEM.findall(text)
    if not names:
        raise ValueError("no target stack in the text")
    return next((n for n in names if n not in _NOT_PROCESS_TARGETS), None)


def parse_info_target(text: str) -> Optional[str]:
    """The same from `info target`, which says less: its section headers name the targets
    ("Local core dump file:", "Remote target using gdb-specific protocol:", "Native process:")."""
    heads = [
        line.strip().lower()
        for line in text.splitlines()
        if line.rstrip().endswith(":") and not line[:1].isspace()
    ]
    if any(h.startswith("local core dump file") for h in heads):
        return "core"
    if any(h.startswith("extended remote") for h in heads):
        return "extended-remote"
    if any(h.startswith("remote") for h in heads):
        return "remote"
    if any(h.startswith("native process") for h in heads):
        return "native"
    return None


def selected_checkpoint_is_fork(text: str) -> bool:
    """From `info checkpoints`: whether the selected entry ("* N ...") is a checkpoint's fork
    rather than the main process ("No checkpoints." when there are none)."""
    for line in text.splitlines():
        if line.startswith("*"):
            return "(main process)" not in line
    return False
