"""The glibc version, read from the banner glibc keeps in its read-only data."""

import re
from functools import lru_cache
from typing import Optional, Tuple

_BANNER = re.compile(rb"GNU C Library [^\n]*?version (\d+)\.(\d+)")
_PLAIN = re.compile(rb"glibc (\d+)\.(\d+)")


def version_from_bytes(data: bytes) -> Optional[Tuple[int, int]]:
    m = _BANNER.search(data)
    if m:
        return int(m.group(1)), int(m.group(2))
    return None


@lru_cache(maxsize=4096)
def looks_like_libc(path: str) -> bool:
    """Cached: a process with 200k mappings names only a few distinct files."""
    base = path.rsplit("/", 1)[-1]
    return (
        base.startswith("libc.so")
        or base.startswith("libc-2.")
        or re.match(r"libc\.so\.\d", base) is not None
    )


_MALLOC_TUNABLE = b"glibc.malloc."
_BARE_VERSION = re.compile(rb"\0(2)\.(\d\d)\0")  # every glibc with a tcache is 2.26 or later


def version_from_bare_string(data: bytes) -> Optional[Tuple[int, int]]:
    """glibc's version in a stripped static program, which keeps no banner and no symbols but
    still holds VERSION ("2.36") as a bare string for libthread_db's check.

    Only trusted when the bytes are glibc's (the names of malloc's tunables are there), exactly
    one such string exists, and the features agree: glibc.malloc.hugetlb exists from 2.35 on.
    """
    if _MALLOC_TUNABLE not in data:
        return None
    found = {(int(m.group(1)), int(m.group(2))) for m in _BARE_VERSION.finditer(data)}
    if len(found) != 1:
        return None
    v = found.pop()
    if (v >= (2, 35)) != (b"glibc.malloc.hugetlb" in data):
        return None
    return v
