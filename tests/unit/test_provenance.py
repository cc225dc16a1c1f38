"""How each anchor was found: a kind the code decides on and a detail for the user (issue 11).
The words are what the heap commands printed before there were kinds: `found` in their JSON and
their header lines stay byte for byte the same."""

import json

import pytest

from gdbext.model.provenance import How, Provenance


@pytest.mark.parametrize("how,text", [
    (Provenance(How.SYMBOL), "symbol"),
    (Provenance(How.TLS, "tcache"), "TLS variable tcache"),
    (Provenance(How.HEURISTIC, "the malloc_state in libc's data"), "heuristic: the malloc_state in libc's data"),
    (Provenance(How.NOT_FOUND), "not found"),
    (Provenance(How.NOT_FOUND, "by TLS"), "not found by TLS"),
    (Provenance(How.NOT_FOUND, "(mmapped chunks are not cross-checked)"),
     "not found (mmapped chunks are not cross-checked)"),
    (Provenance(How.DEBUG_TYPES), "debug types"),
    (Provenance(How.DEBUG_TYPES, "+ version table"), "debug types + version table"),
    (Provenance(How.VERSION_TABLE), "version table"),
    (Provenance(How.BANNER), "banner"),
    (Provenance(How.REBUILT, "(no /proc); mmapped chunks are not searched"),
     "rebuilt from memory and symbols (no /proc); mmapped chunks are not searched"),
])
def test_the_words_are_the_kinds_then_the_detail(how, text):
    assert how.text == text == str(how)


def test_a_note_keeps_the_kind():
    note = "(libc's TLS variables are not read in a restarted checkpoint)"
    assert Provenance(How.NOT_FOUND).noted(note) == Provenance(How.NOT_FOUND, note)
    assert Provenance(How.NOT_FOUND).noted(note).text == "not found " + note
    got = Provenance(How.HEURISTIC, "the TLS word 0x10").noted(note)
    assert got.kind is How.HEURISTIC and got.text == "heuristic: the TLS word 0x10 " + note
    assert Provenance(How.NOT_FOUND, "by TLS").noted(note).text == "not found by TLS " + note


def test_every_kind_reads_as_words_and_its_json_value_is_snake_case():
    for kind in How:
        assert Provenance(kind).text and kind.value == kind.value.lower()
        assert " " not in kind.value
    assert json.loads(json.dumps({"how": How.NOT_FOUND.value})) == {"how": "not_found"}


def test_frozen():
    with pytest.raises(Exception):
        Provenance(How.SYMBOL).kind = How.TLS
