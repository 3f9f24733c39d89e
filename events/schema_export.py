"""JSON Schema per event type, for field-app authors."""

from __future__ import annotations

from pathlib import Path

import orjson

from events.catalog import EVENT_TYPES


def export_schemas(directory: Path) -> list[Path]:
    """Write ``<type>.schema.json`` for every catalog type; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type, model in EVENT_TYPES.items():
        schema = model.model_json_schema()
        schema["$id"] = f"urn:jiahe:event:{event_type}:v1"
        schema["title"] = event_type
        path = directory / f"{event_type}.schema.json"
        path.write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        written.append(path)
    return written
