"""Cluster membership: bootstrap, joining with tokens, promotion/demotion in Raft."""

from manager.membership.bootstrap import bootstrap, new_cluster, new_node
from manager.membership.roles import RoleManager
from manager.membership.servicer import MembershipServicer, update_node

__all__ = ["MembershipServicer", "RoleManager", "bootstrap", "new_cluster", "new_node", "update_node"]
