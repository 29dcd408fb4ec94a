"""The agent: a session to the dispatcher, and task controllers that run assignments."""
