"""The one JSON document a --json command prints."""

import json

SCHEMA = 1


def document(command: str, target: dict, **body) -> str:
    doc = {"command": command, "schema": SCHEMA, "target": target}
    doc.update(body)
    return json.dumps(doc, separators=(",", ":"), default=_default)


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
