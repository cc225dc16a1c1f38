"""Addresses and sizes, the same way in every command."""

from functools import partial
from typing import Callable

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def address(value, pointer_size: int = 8) -> str:
    """As many hex digits as the target's pointers have, as gdb prints them: 0x00007ffff7a00000
    on x86-64, 0x0804a000 on i386.  The views take `pointer_size` from the model (the heap's
    `Layout`) or the command's `Target`, so one target's output has one width."""
    if value is None:
        return "-"
    return f"0x{value:0{2 * pointer_size}x}"


def address_of(pointer_size: int) -> Callable[..., str]:
    """`address` for one target, for a view that prints many."""
    return partial(address, pointer_size=pointer_size)


def human(n: int) -> str:
    """1536 -> '1.5 KiB'; exact figures stay short ('132 KiB', not '132.0 KiB')."""
    if n is None:
        return "-"
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{int(value)} B"
            text = f"{value:.1f}".rstrip("0").rstrip(".")
            return f"{text} {unit}"
        value /= 1024
    return f"{n} B"


def size(n: int) -> str:
    """'0x21000 (132 KiB)'."""
    if n is None:
        return "-"
    return f"{n:#x} ({human(n)})"


def parse_size(text: str) -> int:
    """Accepts 4096, 0x1000, 4k, 4KiB, 1.5M."""
    t = text.strip().lower().replace("ib", "").rstrip("b")
    mult = 1
    for suffix, m in (("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30)):
        if t.endswith(suffix):
            t, mult = t[:-1], m
            break
    try:
        n = int(t, 16) * mult if t.startswith("0x") else int(float(t) * mult)
    except (ValueError, OverflowError):  # OverflowError: 'inf'
        raise ValueError(f"not a size: {text!r}") from None
    if n < 0:
        raise ValueError(f"not a size: {text!r} (sizes are 0 or more)")
    return n


def percent(part, whole) -> str:
    if part is None or not whole:
        return "-"
    return f"{100.0 * part / whole:.1f}%"


def plural(n: int, noun: str) -> str:
    """'1 chunk', '3 chunks'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
