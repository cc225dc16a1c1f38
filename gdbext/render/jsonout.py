"""The one JSON document a --json command prints."""

import json
from typing import Iterator

SCHEMA = 1


def document(command: str, target: dict, **body) -> str:
    doc = {"command": command, "schema": SCHEMA, "target": target}
    doc.update(body)
    return json.dumps(doc, separators=(",", ":"), default=_default)


def document_pieces(command: str, target: dict, **body) -> Iterator[str]:
    """document(command, target, **body) in pieces, for a body whose values may be too big to
    make as objects: a value with a json_pieces() method (a diff's chunk lists) streams its own
    JSON text where its value goes.  Each such value's place is marked in the document made
    without it (a string no name or label holds), and the text is cut there."""
    streamed = {k: v for k, v in body.items() if hasattr(v, "json_pieces")}
    marks = {k: "\x00gdbext %s %x\x00" % (k, id(v)) for k, v in streamed.items()}
    text = document(command, target, **dict(body, **marks))
    for k, v in streamed.items():
        before, mark, text = text.partition(json.dumps(marks[k]))
        if not mark:
            raise ValueError(f"{k}: its mark is not in the document")
        yield before
        yield from v.json_pieces()
    yield text


def _default(obj):
    if hasattr(obj, "to_json"):
        return obj.to_json()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def error_document(command: str, message: str) -> str:
    """What a --json command prints on stdout when it fails: its name, the schema and the
    one-line error (the same line gdb prints on stderr), so a script always parses stdout."""
    return json.dumps({"command": command, "schema": SCHEMA, "error": message}, separators=(",", ":"))
