"""Placement constraints: `node.id`, `node.hostname`, `node.role`, `node.platform.os|arch`,
`node.labels.KEY`, with `==` or `!=`. Parsed at the API edge (bad ones are InvalidSpec) and
matched by the scheduler."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shoal.api import Node, NodeRole
from shoal.errors import InvalidSpec

_EXPR = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(==|!=)\s*(\S.*?)\s*$")
_FIXED_KEYS = {"node.id", "node.hostname", "node.role", "node.platform.os", "node.platform.arch"}


@dataclass(frozen=True)
class Constraint:
    key: str
    equal: bool
    value: str

    def __str__(self) -> str:
        return f"{self.key}{'==' if self.equal else '!='}{self.value}"

    def matches(self, node: Node) -> bool:
        actual = node_attribute(node, self.key)
        if actual is None:
            # A missing label never equals anything, and always differs.
            return not self.equal
        same = actual.lower() == self.value.lower() if self.key != "node.id" else actual == self.value
        return same == self.equal


def node_attribute(node: Node, key: str) -> str | None:
    if key == "node.id":
        return node.id
    if key == "node.hostname":
        return node.description.hostname
    if key == "node.role":
        return "manager" if node.role == NodeRole.MANAGER else "worker"
    if key == "node.platform.os":
        return node.description.platform.os
    if key == "node.platform.arch":
        return node.description.platform.architecture
    label = key.removeprefix("node.labels.")
    return node.spec.annotations.labels.get(label)


def parse(expr: str) -> Constraint:
    m = _EXPR.match(expr)
    if not m:
        raise InvalidSpec(f"invalid constraint {expr!r}: expected KEY==VALUE or KEY!=VALUE")
    key, op, value = m.group(1), m.group(2), m.group(3)
    if key not in _FIXED_KEYS and not (key.startswith("node.labels.") and len(key) > len("node.labels.")):
        raise InvalidSpec(f"invalid constraint {expr!r}: unknown key {key!r}")
    if key == "node.role" and value.lower() not in ("manager", "worker"):
        raise InvalidSpec(f"invalid constraint {expr!r}: node.role is manager or worker")
    return Constraint(key, op == "==", value)


def parse_all(exprs: list[str] | tuple[str, ...]) -> list[Constraint]:
    return [parse(e) for e in exprs]


def match_all(constraints: list[Constraint], node: Node) -> bool:
    return all(c.matches(node) for c in constraints)
