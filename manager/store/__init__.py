"""The manager's store: the only shared state, replicated through Raft. See docs/design/store.md."""

from manager.store.events import Action, Event, Watch
from manager.store.memory import ApplyResult, LocalProposer, MemoryStore, Proposer, Tx
from manager.store.tables import StoreObj, obj_name
from manager.store.view import ReadView, copy_of, is_terminal

__all__ = [
    "Action",
    "ApplyResult",
    "Event",
    "LocalProposer",
    "MemoryStore",
    "Proposer",
    "ReadView",
    "StoreObj",
    "Tx",
    "Watch",
    "copy_of",
    "is_terminal",
    "obj_name",
]
