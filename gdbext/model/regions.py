"""Mappings and the classifier that names each one the way a C programmer thinks of memory."""

from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class Mapping:
    """One line of /proc/PID/maps (or its equivalent for cores and remote targets)."""

    start: int
    end: int
    perms: str  # "rwxp" style, 4 characters
    offset: int = 0
    path: str = ""  # "" for anonymous; "[heap]", "[stack]", "[vdso]"... kept verbatim
    inode: int = 0

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def readable(self) -> bool:
        return self.perms[:1] == "r"

    @property
    def writable(self) -> bool:
        return self.perms[1:2] == "w"

    @property
    def executable(self) -> bool:
        return self.perms[2:3] == "x"

    @property
    def no_access(self) -> bool:
        return self.perms[:3] == "---"

    @property
    def anonymous(self) -> bool:
        return self.path == "" or self.path.startswith("[anon")

    def contains(self, address: int) -> bool:
        return self.start <= address < self.end
