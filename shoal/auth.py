"""Node identity on gRPC calls until mutual TLS lands: each node presents its id and a secret
derived from the cluster secret (HMAC), in call metadata. Join tokens follow Swarm's format."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

NODE_ID_KEY = "x-shoal-node-id"
NODE_SECRET_KEY = "x-shoal-node-secret"


def node_secret(cluster_secret: str, node_id: str) -> str:
    return hmac.new(cluster_secret.encode(), node_id.encode(), hashlib.sha256).hexdigest()


def verify_node_secret(cluster_secret: str, node_id: str, secret: str) -> bool:
    return hmac.compare_digest(node_secret(cluster_secret, node_id), secret)


def node_metadata(node_id: str, secret: str) -> tuple[tuple[str, str], ...]:
    return ((NODE_ID_KEY, node_id), (NODE_SECRET_KEY, secret))


def metadata_identity(metadata: Sequence[tuple[str, str | bytes]] | None) -> tuple[str, str]:
    md = {k: v for k, v in (metadata or ())}
    node_id, secret = md.get(NODE_ID_KEY, ""), md.get(NODE_SECRET_KEY, "")
    return str(node_id), str(secret)


def new_join_token(cluster_secret: str) -> str:
    """SWMTKN-1-<cluster fingerprint>-<random>: the fingerprint ties a token to its cluster."""
    fingerprint = hashlib.sha256(cluster_secret.encode()).hexdigest()[:50]
    return f"SWMTKN-1-{fingerprint}-{secrets.token_hex(13)}"
