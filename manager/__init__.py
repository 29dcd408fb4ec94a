"""The manager: Raft-replicated store, control API, and leader-only control loops."""
