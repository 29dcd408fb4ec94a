"""Our own container runtime: a supervisor process per container (namespaces, overlayfs,
cgroups, logs), and the executor that drives it for the agent."""
