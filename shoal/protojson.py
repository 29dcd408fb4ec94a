"""The one place objects become JSON: protobuf JSON, proto field names, enums by name."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message


def to_dict(msg: Message) -> dict[str, Any]:
    out = json_format.MessageToDict(
        msg,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    _nest_mode(out)
    return out


_MODES = ("replicated", "global")


def _nest_mode(d: Any) -> None:
    """A ServiceSpec's oneof `mode` appears as `spec.mode.replicated` / `spec.mode.global` (the
    JSON contract of DESIGN.md section 5), not flattened as protobuf JSON would print it."""
    if isinstance(d, dict):
        if any(m in d for m in _MODES) and ("task" in d or "annotations" in d):
            d["mode"] = {m: d.pop(m) for m in _MODES if m in d}
        for v in d.values():
            _nest_mode(v)
    elif isinstance(d, list):
        for v in d:
            _nest_mode(v)


def dumps(obj: Message | Iterable[Message]) -> str:
    if isinstance(obj, Message):
        return json.dumps(to_dict(obj), indent=2)
    return json.dumps([to_dict(m) for m in obj], indent=2)
