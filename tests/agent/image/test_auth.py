"""Registry authentication and redirects, against httpx.MockTransport (Docker Hub's flow:
401 with a Bearer challenge, a token from the realm, blobs redirected to another host)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from agent.image import ImageError, parse
from agent.image.blobs import BlobStore
from agent.image.manifest import OCI_MANIFEST
from agent.image.registry import Registry

MANIFEST = json.dumps(
    {"schemaVersion": 2, "config": {"digest": "sha256:" + "c" * 64, "size": 2}, "layers": []}
)
BLOB = b"layer bytes"
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


class Stream(httpx.AsyncByteStream):
    """A streamed body (one given as bytes is read at once, and aiter_raw would refuse it)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(0, len(self.data), 4):
            yield self.data[i : i + 4]


def hub(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        if req.url.host == "auth.example.com":
            assert req.url.params["service"] == "registry.example.com"
            assert req.url.params["scope"] == "repository:team/app:pull"
            return httpx.Response(200, json={"token": "T0KEN"})
        if req.url.host == "cdn.example.com":
            return httpx.Response(200, stream=Stream(BLOB))
        if req.headers.get("Authorization") != "Bearer T0KEN":
            challenge = (
                'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
                'scope="repository:team/app:pull"'
            )
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        if "/manifests/" in req.url.path:
            return httpx.Response(200, content=MANIFEST, headers={"Content-Type": OCI_MANIFEST})
        if "/blobs/" in req.url.path:
            return httpx.Response(307, headers={"Location": "https://cdn.example.com/blob?sig=1"})
        return httpx.Response(404)

    return httpx.MockTransport(handle)


async def test_anonymous_bearer_token_and_cross_host_redirect(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    async with Registry(parse("registry.example.com/team/app:v1"), transport=hub(seen)) as reg:
        media_type, body, digest = await reg.manifest("v1")
        assert media_type == OCI_MANIFEST and body == MANIFEST.encode()
        assert digest == "sha256:" + hashlib.sha256(MANIFEST.encode()).hexdigest()
        await reg.blob(BLOB_DIGEST, len(BLOB), BlobStore(tmp_path))
    assert BlobStore(tmp_path).path(BLOB_DIGEST).read_bytes() == BLOB
    hosts = [(r.url.host, r.url.path) for r in seen]
    assert hosts == [
        ("registry.example.com", "/v2/team/app/manifests/v1"),
        ("auth.example.com", "/token"),
        ("registry.example.com", "/v2/team/app/manifests/v1"),
        ("registry.example.com", f"/v2/team/app/blobs/{BLOB_DIGEST}"),  # the token is reused
        ("cdn.example.com", "/blob"),
    ]
    assert seen[0].url.scheme == "https"
    assert "application/vnd.oci.image.index.v1+json" in seen[0].headers["Accept"]
    assert seen[3].headers["Accept-Encoding"] == "identity"
    assert "Authorization" not in seen[4].headers  # never sent to the CDN


async def test_basic_auth_when_the_registry_asks(tmp_path: Path) -> None:
    good = "Basic " + base64.b64encode(b"me:secret").decode()

    def handle(req: httpx.Request) -> httpx.Response:
        if req.headers.get("Authorization") != good:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="Registry"'})
        return httpx.Response(200, content=MANIFEST, headers={"Content-Type": OCI_MANIFEST})

    ref = parse("127.0.0.1:5000/app")
    async with Registry(ref, "me", "secret", transport=httpx.MockTransport(handle)) as reg:
        assert (await reg.manifest("latest"))[0] == OCI_MANIFEST
    async with Registry(ref, transport=httpx.MockTransport(handle)) as reg:
        with pytest.raises(ImageError, match="wants a username and password"):
            await reg.manifest("latest")


async def test_docker_hub_says_401_for_a_missing_repository() -> None:
    def handle(req: httpx.Request) -> httpx.Response:
        if req.url.host == "auth.docker.io":
            return httpx.Response(200, json={"access_token": "anon"})
        challenge = 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    async with Registry(parse("nosuchuser/nosuchrepo"), transport=httpx.MockTransport(handle)) as reg:
        with pytest.raises(ImageError, match="repository nosuchuser/nosuchrepo not found or access denied"):
            await reg.manifest("latest")


async def test_a_manifest_fetched_by_digest_is_verified() -> None:
    def handle(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=MANIFEST, headers={"Content-Type": OCI_MANIFEST})

    wrong = "sha256:" + "1" * 64
    async with Registry(parse("127.0.0.1:5000/app"), transport=httpx.MockTransport(handle)) as reg:
        with pytest.raises(ImageError, match=f"digest mismatch for manifest {wrong}"):
            await reg.manifest(wrong)
