"""How each of malloc's anchors (and the layout, the glibc version, the mappings) was found: a
kind that code decides on, and a detail for the user (what matched, or why not).

    Provenance(How.HEURISTIC, "the malloc_state in libc.so.6's data ...").text
        == "heuristic: the malloc_state in libc.so.6's data ..."

`text` is what the heap commands print and what their JSON's "found" holds; the kind is their
JSON's "how" (`How.value`).
"""

from dataclasses import dataclass
from enum import Enum


class How(Enum):
    SYMBOL = "symbol"  # libc's own symbol, or its debug info
    TLS = "tls"  # libc's own TLS variable (the detail names it), read through its debug info
    HEURISTIC = "heuristic"  # by its shape or by a search: the detail says what matched
    NOT_FOUND = "not_found"  # the detail may say why, or what that costs
    BANNER = "banner"  # the glibc version, from libc's banner
    DEBUG_TYPES = "debug_types"  # the layout, from libc's debug types (the detail: what else)
    VERSION_TABLE = "version_table"  # the layout, from the table keyed by the glibc version
    REBUILT = "rebuilt"  # the mappings, rebuilt from memory and symbols (the detail: why)


# What each kind reads as, before its detail.
_WORDS = {
    How.SYMBOL: "symbol",
    How.TLS: "TLS variable",
    How.HEURISTIC: "heuristic:",
    How.NOT_FOUND: "not found",
    How.BANNER: "banner",
    How.DEBUG_TYPES: "debug types",
    How.VERSION_TABLE: "version table",
    How.REBUILT: "rebuilt from memory and symbols",
}


@dataclass(frozen=True)
class Provenance:
    kind: How
    detail: str = ""

    @property
    def text(self) -> str:
        """The words the user reads: the kind's, then the detail."""
        word = _WORDS[self.kind]
        return f"{word} {self.detail}" if self.detail else word

    def noted(self, note: str) -> "Provenance":
        """The same kind, with `note` after the detail."""
        return Provenance(self.kind, f"{self.detail} {note}" if self.detail else note)

    def __str__(self) -> str:
        return self.text
