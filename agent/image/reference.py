"""Image references, as Docker reads them: `[HOST[:PORT]/]REPO[:TAG][@sha256:HEX]`. A first
component with a dot, a colon or `localhost` is a registry host; otherwise the image is on
Docker Hub (`docker.io/library/NAME` for one-word names)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from agent.image.errors import ImageError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_REPO = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_LABEL = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_HOST = re.compile(rf"^(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?$")
MAX_NAME = 255


@dataclass(frozen=True)
class Reference:
    host: str
    repo: str
    tag: str = "latest"
    digest: str = ""

    def __str__(self) -> str:
        out = f"{self.host}/{self.repo}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.host == DOCKER_HUB else self.host

    @property
    def scheme(self) -> str:
        """Plain HTTP for local registries (a port, an IP, localhost), as for Docker's insecure ones."""
        if self.host.startswith("[") or ":" in self.host or self.host == "localhost":
            return "http"
        try:
            ipaddress.ip_address(self.host)
            return "http"
        except ValueError:
            return "https"

    @property
    def manifest_ref(self) -> str:
        return self.digest or self.tag

    def pinned(self, digest: str) -> Reference:
        return Reference(self.host, self.repo, self.tag, digest)


def parse(ref: str) -> Reference:
    def bad(why: str) -> ImageError:
        return ImageError(f"invalid image reference {ref!r}: {why}")

    if not ref or ref != ref.strip() or any(c.isspace() for c in ref):
        raise bad("empty or contains spaces")
    rest, _, digest = ref.partition("@")
    if digest and not _DIGEST.match(digest):
        raise bad("the digest must be sha256:<64 hex digits>")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        host, path = first, remainder
    else:
        host, path = DOCKER_HUB, rest
    if not _HOST.match(host):
        raise bad(f"invalid registry host {host!r}")
    if host == "index.docker.io":
        host = DOCKER_HUB
    tag = ""
    name = path
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = path.rsplit(":", 1)
        if not _TAG.match(tag):
            raise bad(f"invalid tag {tag!r}")
    if host == DOCKER_HUB and "/" not in name:
        name = f"library/{name}"
    if len(host) + 1 + len(name) > MAX_NAME:
        raise bad(f"the name is longer than {MAX_NAME} characters")
    if not _REPO.match(name):
        raise bad(f"invalid repository name {name!r} (lowercase letters, digits, '.', '_', '-', '/')")
    if not tag and not digest:
        tag = "latest"
    return Reference(host, name, tag, digest)
