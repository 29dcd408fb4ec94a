"""Raft replication of the store, behind one adapter around pysyncobj."""

from manager.raft.adapter import PROPOSE_TIMEOUT, RaftNode
from manager.raft.journal import CorruptJournal, check_raft_files

__all__ = ["PROPOSE_TIMEOUT", "CorruptJournal", "RaftNode", "check_raft_files"]
