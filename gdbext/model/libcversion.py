"""The glibc version, read from the banner glibc keeps in its read-only data."""

import re
from typing import Optional, Tuple

_BANNER = re.compile(rb"GNU C Library [^\n]*?version (\d+)\.(\d+)")
_PLAIN = re.compile(rb"glibc (\d+)\.(\d+)")


def version_from_bytes(data: bytes) -> Optional[Tuple[int, int]]:
    m = _BANNER.search(data)
    if m:
        return int(m.group(1)), int(m.group(2))
    return None


def looks_like_libc(path: str) -> bool:
    base = path.rsplit("/", 1)[-1]
    return base.startswith("libc.so") or base.startswith("libc-2.") or re.match(r"libc\.so\.\d", base) is not None
