"""How every botloom storage encodes values and etags, so they read each other's data the same way.

Values are dicts or objects such as `StoreItem` (and whatever `BotState` writes, e.g.
`DialogState`), stored as jsonpickle JSON, as botbuilder's Blob and Cosmos storages do, so reading
rebuilds the same types. Only read stores you trust: reading restores classes. The etag is kept
beside the value, never inside the JSON.
"""

from __future__ import annotations

import json
from typing import Any

from jsonpickle.pickler import Pickler
from jsonpickle.unpickler import Unpickler

# A write whose e_tag is ABSENT creates the item only where there is none (else it conflicts):
# two replicas creating the same record cannot overwrite each other. botbuilder's MemoryStorage
# behaves the same, since no stored item ever carries this etag.
ABSENT = "absent"


def etag_of(value: Any) -> str | None:
    """The etag a write must match, or None for an unconditional write ("*" or none)."""
    etag = value.get("e_tag") if isinstance(value, dict) else getattr(value, "e_tag", None)
    if etag == "":
        raise ValueError("e_tag is empty: pass the etag read, '*' or none")
    return None if etag in (None, "*") else str(etag)


def rows_to_write(changes: dict[str, Any] | None) -> list[tuple[str, str | None, str]]:
    """(key, etag to match, JSON) for each change, serialised now, so the stored value is the one
    the caller passed whatever happens next. ValueError when `changes` is None."""
    if changes is None:
        raise ValueError("changes are required when writing")
    return [(key, etag_of(value), dumps(key, value)) for key, value in changes.items()]


def dumps(key: str, value: Any) -> str:
    """`value` as jsonpickle JSON text, without its etag. Raises TypeError for non-objects."""
    flat = Pickler().flatten(value)
    if not isinstance(flat, dict):
        raise TypeError(f"{key!r}: storage values must be dicts or objects, not {type(value)}")
    flat.pop("e_tag", None)  # kept in its own column
    return json.dumps(flat)


def loads(text: str, etag: str) -> Any:
    """The value `dumps` wrote, rebuilt, with `etag` in `e_tag` (dict key or attribute)."""
    flat = json.loads(text)
    flat["e_tag"] = etag
    return Unpickler().restore(flat)


def set_etag(value: Any, etag: str) -> None:
    """Put the new etag on a written value, so the caller can write it again (a second save)."""
    if isinstance(value, dict):
        value["e_tag"] = etag
    elif hasattr(value, "__dict__"):
        value.e_tag = etag


def set_etags(changes: dict[str, Any], etags: list[str]) -> None:
    """`set_etag` on each written value, in the order of `changes`."""
    for value, etag in zip(changes.values(), etags, strict=True):
        set_etag(value, etag)
