"""The manager: Raft-replicated store, control API, and leader-only control loops.

Each subpackage's __init__ is its API (manager.store, manager.raft, manager.membership, ...);
the Manager itself is in manager.manager. This top-level package imports nothing, so that
importing one subpackage does not load them all."""
