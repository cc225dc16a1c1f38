"""allocwatch's options: what `allocwatch on` was asked for, and the size range it reads."""

from dataclasses import dataclass
from typing import Optional, Tuple

RETURN_METHODS = ("address", "call", "finish")
MAX_BT = 64
MAX_UAF = 4  # x86-64 has four debug registers


@dataclass(frozen=True)
class AllocOptions:
    bt: int = 0  # frames kept per allocation
    sizes: Optional[Tuple[int, int]] = None  # only requests of lo..hi bytes (inclusive)
    sample: int = 1  # record one allocation in `sample`
    uaf: int = 0  # watch the first word of the last `uaf` freed chunks
    returns: str = "address"  # how a call's result is read (see inferior/allocwatch)

    def to_json(self) -> dict:
        return {
            "bt": self.bt,
            "sizes": list(self.sizes) if self.sizes else None,
            "sample": self.sample,
            "uaf": self.uaf,
            "returns": self.returns,
        }

    def wants(self, size: Optional[int]) -> bool:
        """Whether a request of `size` bytes is in --sizes (an unknown size always is)."""
        if self.sizes is None or size is None:
            return True
        return self.sizes[0] <= size <= self.sizes[1]


def parse_range(text: str, parse_size) -> Tuple[int, int]:
    """'16-64', '4k-', '-1M', '24' (one size) -> (lo, hi); parse_size reads each bound."""
    text = text.strip()
    if "-" not in text:
        n = parse_size(text)
        return n, n
    lo_text, hi_text = text.split("-", 1)
    lo = parse_size(lo_text) if lo_text.strip() else 0
    hi = parse_size(hi_text) if hi_text.strip() else (1 << 64) - 1
    if lo > hi:
        raise ValueError(f"empty size range {text!r}")
    return lo, hi
