"""swarmctl: the operator CLI (after SwarmKit's swarmctl), talking to a manager's control socket."""
