"""Manifest media types, manifest parsing, and the choice of a platform in an index.

The type of a manifest is what the registry's Content-Type says (the body's own mediaType is
optional in OCI documents), which is why the parsers take the type as given."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agent.image.errors import ImageError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEXES = (OCI_INDEX, DOCKER_LIST)
MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
KNOWN = (*INDEXES, *MANIFESTS)
ACCEPT = ", ".join(KNOWN)

GZIP_LAYERS = (
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
)
TAR_LAYERS = (
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
)
LAYERS = (*GZIP_LAYERS, *TAR_LAYERS)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    @classmethod
    def of(cls, d: dict[str, Any]) -> Descriptor:
        size = int(d["size"])
        if size < 0:
            raise ValueError(f"negative size {size}")
        return cls(str(d.get("mediaType", "")), str(d["digest"]), size)


@dataclass(frozen=True)
class Manifest:
    config: Descriptor
    layers: list[Descriptor]


def _json(body: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise ImageError(f"malformed {what}: {e}") from None
    if not isinstance(doc, dict):
        raise ImageError(f"malformed {what}: not a JSON object")
    return doc


def parse_manifest(body: bytes) -> Manifest:
    doc = _json(body, "image manifest")
    try:
        return Manifest(Descriptor.of(doc["config"]), [Descriptor.of(x) for x in doc["layers"]])
    except (KeyError, TypeError, ValueError) as e:
        raise ImageError(f"malformed image manifest: {e!r}") from None


def choose_platform(body: bytes, os: str = "linux", arch: str = "amd64") -> Descriptor:
    """The manifest for os/arch in an index (the first one, as Docker picks)."""
    doc = _json(body, "image index")
    for m in doc.get("manifests") or []:
        p = m.get("platform") or {}
        if p.get("os") == os and p.get("architecture") == arch:
            try:
                return Descriptor.of(m)
            except (KeyError, TypeError, ValueError) as e:
                raise ImageError(f"malformed image index: {e!r}") from None
    raise ImageError(f"the image has no {os}/{arch} variant")


def parse_config(body: bytes) -> dict[str, Any]:
    """The "config" object of an image configuration (Env, Entrypoint, Cmd, ...), {} if absent."""
    config = _json(body, "image configuration").get("config") or {}
    if not isinstance(config, dict):
        raise ImageError("malformed image configuration: config is not an object")
    return config
