"""Code both halves of shoal share: the generated API, errors, logging, ids, gRPC plumbing."""
