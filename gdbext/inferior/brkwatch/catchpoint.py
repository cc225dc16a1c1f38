"""brkwatch's `catch syscall` catchpoint and the convenience function that is its condition."""

import re
from typing import Callable, Optional

import gdb

from .libccode import Unavailable

CONDITION = "$_gdbext_brkwatch()"


class CatchCondition(gdb.Function):
    """$_gdbext_brkwatch(): the condition of brkwatch's syscall catchpoint (records, says 0
    unless the event is to stop the program)."""

    def __init__(self, on_catch: Callable[[], bool]):
        self._on_catch = on_catch
        super().__init__("_gdbext_brkwatch")

    def invoke(self):
        return 1 if self._on_catch() else 0


def _bpnum() -> Optional[int]:
    """$bpnum: the number of the breakpoint (or catchpoint) the user's last command made."""
    try:
        v = gdb.parse_and_eval("$bpnum")
        return None if v.type.code == gdb.TYPE_CODE_VOID else int(v)
    except (gdb.error, ValueError, OverflowError):
        return None


class SyscallCatchpoint:
    """brkwatch's `catch syscall` catchpoint.  Python cannot make a catchpoint, and gdb before
    13 gives it no gdb.Breakpoint either (gdb.breakpoints() leaves it out): so it is made with
    the command, found by its number in $bpnum, and, without an object, driven by number."""

    def __init__(self, number: int, bp=None):
        self.number = number
        self._bp = bp

    @classmethod
    def create(cls, nrs, condition: str, silent: bool) -> "SyscallCatchpoint":
        before = _bpnum()
        gdb.execute("catch syscall " + " ".join(map(str, nrs)), to_string=True)
        number = _bpnum()
        if number is None or number == before:
            raise Unavailable("gdb made no syscall catchpoint")
        bp = next((b for b in gdb.breakpoints() or () if b.number == number), None)
        cp = cls(number, bp)
        try:
            cp._set_up(condition, silent)
        except (gdb.error, RuntimeError) as e:
            cp.delete()
            raise Unavailable(f"cannot set up syscall catchpoint {number} ({e})") from None
        return cp

    def _set_up(self, condition: str, silent: bool):
        if self._bp is not None:
            self._bp.condition = condition
            self._bp.silent = silent
            return
        gdb.execute(f"condition {self.number} {condition}", to_string=True)
        if silent:
            gdb.execute(f"commands {self.number}\nsilent\nend", to_string=True)

    def is_valid(self) -> bool:
        if self._bp is not None:
            return self._bp.is_valid()
        try:  # says "No breakpoint or watchpoint matching 'N'." once it is deleted
            text = gdb.execute(f"info breakpoints {self.number}", to_string=True)
        except gdb.error:
            return False
        return re.search(rf"^{self.number}\s+catchpoint\b", text, re.M) is not None

    def delete(self):
        if self._bp is not None:
            if self._bp.is_valid():
                self._bp.delete()
        elif self.is_valid():
            gdb.execute(f"delete {self.number}", to_string=True)
