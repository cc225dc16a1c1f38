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
