"""The one place objects become JSON: protobuf JSON, proto field names, enums by name."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message


def to_dict(msg: Message) -> dict[str, Any]:
    return json_format.MessageToDict(
        msg,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )


def dumps(obj: Message | Iterable[Message]) -> str:
    if isinstance(obj, Message):
        return json.dumps(to_dict(obj), indent=2)
    return json.dumps([to_dict(m) for m in obj], indent=2)
