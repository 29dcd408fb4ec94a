"""Read access to one consistent snapshot of the store. Every getter returns a copy."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from manager.store.tables import KINDS, StoreObj, obj_name
from shoal.api import Cluster, Network, Node, Service, Task
from shoal.api.types_pb2 import TaskState

T = TypeVar("T", Node, Service, Task, Network, Cluster)
Tables = Mapping[str, Mapping[str, StoreObj]]


def _copy(obj: StoreObj) -> Any:
    out = type(obj)()
    out.CopyFrom(obj)  # type: ignore[arg-type]
    return out


class ReadView:
    def __init__(self, tables: Tables, version: int) -> None:
        self._tables = tables
        self.version = version

    def _table(self, cls: type) -> Mapping[str, StoreObj]:
        return self._tables[KINDS[cls].name]

    def _values(self, cls: type) -> Iterable[StoreObj]:
        return self._table(cls).values()

    def get(self, cls: type[T], obj_id: str) -> T | None:
        obj = self._table(cls).get(obj_id)
        return None if obj is None else _copy(obj)

    def find(self, cls: type[T], where: Callable[[T], bool] | None = None) -> list[T]:
        return [_copy(o) for o in self._values(cls) if where is None or where(o)]  # type: ignore[arg-type]

    def scan(self, cls: type[T], where: Callable[[T], bool] | None = None) -> list[T]:
        """Like find, without copying: the store's own objects, for loops that read thousands of
        them per pass. Never modify what scan returns; copy (`copy_of`) what you will write."""
        return [o for o in self._values(cls) if where is None or where(o)]  # type: ignore[misc,arg-type]

    def count(self, cls: type[T], where: Callable[[T], bool] | None = None) -> int:
        return sum(1 for o in self._values(cls) if where is None or where(o))  # type: ignore[arg-type,misc]

    def by_name(self, cls: type[T], name: str) -> T | None:
        low = name.lower()
        for o in self._values(cls):
            if obj_name(o).lower() == low:
                return _copy(o)
        return None

    # Shorthands used all over the manager.
    def get_node(self, node_id: str) -> Node | None:
        return self.get(Node, node_id)

    def get_service(self, service_id: str) -> Service | None:
        return self.get(Service, service_id)

    def get_task(self, task_id: str) -> Task | None:
        return self.get(Task, task_id)

    def get_network(self, network_id: str) -> Network | None:
        return self.get(Network, network_id)

    def nodes(self) -> list[Node]:
        return self.find(Node)

    def services(self) -> list[Service]:
        return self.find(Service)

    def networks(self) -> list[Network]:
        return self.find(Network)

    def cluster(self) -> Cluster | None:
        clusters = self.find(Cluster)
        return clusters[0] if clusters else None

    def tasks(
        self,
        service_id: str | None = None,
        node_id: str | None = None,
        slot: int | None = None,
        desired_state: int | None = None,
    ) -> list[Task]:
        def match(t: Task) -> bool:
            return (
                (service_id is None or t.service_id == service_id)
                and (node_id is None or t.node_id == node_id)
                and (slot is None or t.slot == slot)
                and (desired_state is None or t.desired_state == desired_state)
            )

        return self.find(Task, match)


def copy_of(obj: T) -> T:
    out: T = _copy(obj)
    return out


def is_terminal(state: int) -> bool:
    return state > TaskState.RUNNING


__all__ = ["ReadView", "copy_of", "is_terminal"]
