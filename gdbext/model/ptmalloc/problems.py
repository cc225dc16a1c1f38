"""Problems of one kind folded together: a forged list or a hostile heap can hold a million
alike, and a person (or a JSON consumer) needs the first few and a count, not a million lines."""

import re
from typing import Dict, Iterable, List, Tuple

from .chunks import Problem, ProblemKind

_NUMBER = re.compile(r"0x[0-9a-f]+")


def cause_of(message: str) -> str:
    """A problem's message with its addresses and sizes left out: what it is about."""
    return _NUMBER.sub("0x…", message)


def fold_problems(problems: Iterable[Problem], keep: int) -> List[Tuple[Problem, int, int, int]]:
    """Problems grouped by kind and cause, in order of first appearance: for each group the
    first `keep` as (problem, 0, 0, 0), then one (problem, count, first, last) for the rest
    (count more, at addresses first to last; problem is the first of them)."""
    groups: Dict[Tuple[ProblemKind, str], list] = {}
    order = []
    for p in problems:
        key = (p.kind, cause_of(p.message))
        g = groups.get(key)
        if g is None:
            g = groups[key] = [[], None, 0, None, None]
            order.append(key)
        if len(g[0]) < keep:
            g[0].append(p)
            continue
        if g[1] is None:
            g[1] = p
            g[3] = g[4] = p.address
        g[2] += 1
        g[3] = min(g[3], p.address)
        g[4] = max(g[4], p.address)
    out: list = []
    for key in order:
        shown, first, count, lo, hi = groups[key]
        out.extend((p, 0, 0, 0) for p in shown)
        if count:
            out.append((first, count, lo, hi))
    return out


__all__ = ["fold_problems", "cause_of"]
