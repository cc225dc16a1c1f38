"""Which pages of some address ranges are resident: what the edge read from the kernel's page
map, one flag byte per page, so the model can count resident bytes of any part of those ranges
(a chunk, a free run, a trim range) without asking the kernel again."""

from bisect import bisect_right
from typing import List, Optional, Tuple


class ResidentPages:
    """Resident pages of the ranges added: `add(start, flags)` with `start` page-aligned and
    flags[i] 1 when page i is resident (counted as smaps counts Rss)."""

    def __init__(self, page: int):
        self.page = page
        self._starts: List[int] = []  # first page number of each range, sorted
        self._ranges: List[Tuple[int, bytes]] = []

    def add(self, start: int, flags: bytes) -> None:
        first = start // self.page
        i = bisect_right(self._starts, first)
        self._starts.insert(i, first)
        self._ranges.insert(i, (first, bytes(flags)))

    def _range(self, page: int) -> Optional[Tuple[int, bytes]]:
        i = bisect_right(self._starts, page) - 1
        if i < 0:
            return None
        first, flags = self._ranges[i]
        return (first, flags) if page < first + len(flags) else None

    def flags_of(self, lo: int, hi: int) -> Optional[Tuple[int, bytes]]:
        """(address of the first flag's page, flags) of the range read that holds [lo, hi), or
        None when no one range does."""
        if hi <= lo:
            return None
        page = self.page
        got = self._range(lo // page)
        if got is None or (hi - 1) // page >= got[0] + len(got[1]):
            return None
        return got[0] * page, got[1]

    def bytes_in(self, lo: int, hi: int) -> Optional[int]:
        """Resident bytes of [lo, hi): a page counts for the part of it inside; None when some
        page of it was not read."""
        if hi <= lo:
            return 0
        page = self.page
        p0, p1 = lo // page, (hi - 1) // page
        got = self._range(p0)
        if got is None or p1 >= got[0] + len(got[1]):
            return None
        first, flags = got
        a, b = p0 - first, p1 - first
        if a == b:
            return (hi - lo) if flags[a] else 0
        total = flags.count(1, a + 1, b) * page
        if flags[a]:
            total += (p0 + 1) * page - lo
        if flags[b]:
            total += hi - p1 * page
        return total
