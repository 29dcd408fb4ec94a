"""The Control API: what swarmctl talks to. Validation happens here, before anything is
proposed, so an invalid spec never reaches the Raft log."""

from manager.controlapi.servicer import ControlServicer

__all__ = ["ControlServicer"]
