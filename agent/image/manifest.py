"""Manifest media types and the choice of a platform in an index."""

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
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
GZIP_LAYERS = (
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
)
TAR_LAYERS = ("application/vnd.oci.image.layer.v1.tar",)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    @classmethod
    def of(cls, d: dict[str, Any]) -> Descriptor:
        return cls(str(d.get("mediaType", "")), str(d["digest"]), int(d["size"]))


@dataclass(frozen=True)
class Manifest:
    config: Descriptor
    layers: list[Descriptor]


def parse_manifest(body: bytes) -> Manifest:
    doc = json.loads(body)
    try:
        return Manifest(Descriptor.of(doc["config"]), [Descriptor.of(x) for x in doc["layers"]])
    except (KeyError, TypeError, ValueError) as e:
        raise ImageError(f"malformed image manifest: {e}") from None


def choose_platform(body: bytes, os: str = "linux", arch: str = "amd64") -> Descriptor:
    doc = json.loads(body)
    for m in doc.get("manifests", []):
        p = m.get("platform", {})
        if p.get("os") == os and p.get("architecture") == arch:
            return Descriptor.of(m)
    raise ImageError(f"the image has no {os}/{arch} variant")
