"""Raft replication of the store, behind one adapter around pysyncobj."""

from manager.raft.adapter import PROPOSE_TIMEOUT, RaftNode

__all__ = ["PROPOSE_TIMEOUT", "RaftNode"]
