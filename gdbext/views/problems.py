"""The problems the heap model found, as every heap command shows them: each cause's first few,
then one entry that counts the rest (a forged list or a hostile heap can hold a million alike).
A cause is a kind of problem (ProblemKind) and its message with the numbers left out."""

from typing import List, Optional, Tuple

from ..model.ptmalloc.problems import cause_of, fold_problems
from ..render import fmt
from . import Line

SHOWN_PER_CAUSE = 3  # problem lines of one cause in a table, before one line counts the rest
LISTED_PER_CAUSE = 20  # problems of one cause listed in JSON, before one entry counts the rest


def problems_within(problems, within: Optional[Tuple[int, int]] = None) -> list:
    """The problems at addresses in [lo, hi), or all of them."""
    return [p for p in problems if within is None or within[0] <= p.address < within[1]]


def problem_lines(problems, pointer_size: int = 8) -> List[tuple]:
    """(address, text) per line to show: each cause's first few, then one line with a count;
    addresses as wide as the target's pointers."""
    out = []
    for p, more, lo, hi in fold_problems(problems, SHOWN_PER_CAUSE):
        if not more:
            out.append((p.address, f"{fmt.address(p.address, pointer_size)}: {p.message}"))
        else:
            out.append(
                (
                    lo,
                    f"{more:,} more of this kind, at {fmt.address(lo, pointer_size)} to "
                    f"{fmt.address(hi, pointer_size)} ({cause_of(p.message)})",
                )
            )
    return out


def problem_items(problems, pointer_size: int = 8) -> List[Line]:
    """The lines a table ends with: 'problem: ADDRESS: message', folded per cause."""
    return [[("problem: ", "warning"), (text, None)] for _, text in problem_lines(problems, pointer_size)]


def problems_json(problems) -> List[dict]:
    """The problems for --json, each {"address", "kind", "message"}: each cause's first
    LISTED_PER_CAUSE as they are, then one entry of the same kind with the count of the rest
    ("more") and the range of their addresses."""
    out = []
    for p, more, lo, hi in fold_problems(problems, LISTED_PER_CAUSE):
        if not more:
            out.append({"address": p.address, "kind": p.kind.value, "message": p.message})
        else:
            out.append(
                {
                    "address": lo,
                    "kind": p.kind.value,
                    "message": f"{more:,} more of this kind, at {lo:#x} to {hi:#x} ({cause_of(p.message)})",
                    "more": more,
                    "last": hi,
                }
            )
    return out
