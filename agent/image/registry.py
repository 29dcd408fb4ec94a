"""The OCI distribution API, read-only: ping, manifests, blobs. Anonymous bearer tokens (the
registry's WWW-Authenticate challenge) and basic auth, with optional credentials.

Every failure becomes an ImageError whose message names the image: transport errors say the
registry is unreachable, 404s say whether the repository or the tag is missing (a registry that
answers MANIFEST_UNKNOWN for both is asked for the repository's tags to tell them apart)."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections.abc import AsyncIterator

import httpx

from agent.image import manifest
from agent.image.blobs import BlobStore
from agent.image.errors import ImageError, RegistryUnreachable
from agent.image.reference import Reference

TIMEOUT = httpx.Timeout(30.0, connect=5.0)
MAX_MANIFEST = 4 << 20  # registries refuse bigger ones too


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="...",scope="..."` → ("bearer", {realm: ..., ...})."""
    scheme, _, params = header.strip().partition(" ")
    items = urllib.request.parse_keqv_list(urllib.request.parse_http_list(params)) if params else {}
    return scheme.lower(), items


def _error_codes(resp: httpx.Response) -> list[str]:
    try:
        return [str(e.get("code", "")) for e in resp.json().get("errors", [])]
    except (ValueError, AttributeError, TypeError):
        return []


class Registry:
    """One repository on one registry, for the length of one pull (the token is per repository)."""

    def __init__(
        self,
        ref: Reference,
        username: str | None = None,
        password: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,  # tests: httpx.MockTransport
    ) -> None:
        self.ref = ref
        self._root = f"{ref.scheme}://{ref.api_host}/v2/"
        self._base = f"{self._root}{ref.repo}"
        self._auth = (username, password or "") if username else None
        self._token: str | None = None
        self._basic = False  # the registry asked for basic auth
        self._client = httpx.AsyncClient(follow_redirects=True, timeout=TIMEOUT, transport=transport)

    async def close(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Registry:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _error(self, message: str) -> ImageError:
        return ImageError(f"image {self.ref}: {message}")

    def _unreachable(self, e: Exception) -> RegistryUnreachable:
        reason = str(e) or type(e).__name__
        return RegistryUnreachable(f"image {self.ref}: registry {self.ref.host} unreachable: {reason}")

    async def _login(self, resp: httpx.Response) -> None:
        scheme, params = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
        if scheme == "basic":
            if self._auth is None:
                raise self._error(f"registry {self.ref.host} wants a username and password")
            self._basic = True
            return
        if scheme != "bearer" or "realm" not in params:
            raise self._error(f"unsupported registry authentication {scheme or 'none'!r}")
        query = {"scope": params.get("scope", f"repository:{self.ref.repo}:pull")}
        if "service" in params:
            query["service"] = params["service"]
        try:
            r = await self._client.get(
                params["realm"], params=query, auth=self._auth or httpx.USE_CLIENT_DEFAULT
            )
        except (httpx.TransportError, OSError) as e:
            raise self._unreachable(e) from None
        if r.status_code != 200:
            raise self._error(f"token request to {params['realm']} refused ({r.status_code})")
        try:
            body = r.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not token:
            raise self._error(f"no token in the answer of {params['realm']}")
        self._token = str(token)

    async def _get(self, url: str, headers: dict[str, str], stream: bool = False) -> httpx.Response:
        """GET with whatever authentication the registry asks for (one login per 401)."""
        resp: httpx.Response | None = None
        for attempt in range(2):
            h = dict(headers)
            if self._token:
                h["Authorization"] = f"Bearer {self._token}"
            auth: httpx.Auth | None = None
            if self._basic and self._auth is not None:
                auth = httpx.BasicAuth(*self._auth)
            try:
                req = self._client.build_request("GET", url, headers=h)
                resp = await self._client.send(req, stream=stream, auth=auth)
            except (httpx.TransportError, OSError) as e:
                raise self._unreachable(e) from None
            if resp.status_code == 401 and attempt == 0:
                await resp.aclose()
                await self._login(resp)
                continue
            return resp
        assert resp is not None
        return resp

    async def ping(self) -> None:
        """GET /v2/: reachable and speaks the distribution API (401 is fine: it wants a token)."""
        resp = await self._get(self._root, {})
        if resp.status_code not in (200, 401):
            raise self._error(f"registry {self.ref.host} does not serve the v2 API ({resp.status_code})")

    async def manifest(self, reference: str) -> tuple[str, bytes, str]:
        """(media type, body, digest) of the manifest a tag or digest names."""
        resp = await self._get(f"{self._base}/manifests/{reference}", {"Accept": manifest.ACCEPT})
        what = f"digest {reference}" if reference.startswith("sha256:") else f"tag {reference}"
        if resp.status_code == 404:
            codes = _error_codes(resp)
            if "NAME_UNKNOWN" not in codes:  # some registries say MANIFEST_UNKNOWN for both
                tags = await self._get(f"{self._base}/tags/list", {})
                if tags.status_code in (401, 404):
                    codes = _error_codes(tags) or ["NAME_UNKNOWN"]
            if "NAME_UNKNOWN" in codes:
                raise self._error(f"repository {self.ref.repo} not found")
            raise self._error(f"manifest unknown ({what} not found)")
        if resp.status_code in (401, 403):
            # Docker Hub answers a missing repository like a private one.
            raise self._error(f"repository {self.ref.repo} not found or access denied ({resp.status_code})")
        if resp.status_code != 200:
            raise self._error(f"registry {self.ref.host} answered {resp.status_code} for the manifest")
        body = resp.content
        if len(body) > MAX_MANIFEST:
            raise self._error(f"manifest of {len(body)} bytes is too big")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise self._error(f"digest mismatch for manifest {reference} (got {digest})")
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        if media_type not in manifest.KNOWN:
            # An old registry may say application/json: the body's mediaType decides then.
            try:
                media_type = str(json.loads(body).get("mediaType", media_type))
            except (ValueError, AttributeError):
                pass
        return media_type, body, digest

    async def blob(self, digest: str, size: int, blobs: BlobStore) -> None:
        """Stream a blob into the store, verifying its size and digest while it arrives."""
        resp = await self._get(f"{self._base}/blobs/{digest}", {"Accept-Encoding": "identity"}, stream=True)
        try:
            if resp.status_code != 200:
                raise self._error(f"blob {digest} not found ({resp.status_code})")

            async def chunks() -> AsyncIterator[bytes]:
                try:
                    async for chunk in resp.aiter_raw():
                        yield chunk
                except httpx.TransportError as e:
                    raise self._unreachable(e) from None

            await blobs.write(digest, size, chunks(), what=f"image {self.ref}")
        finally:
            await resp.aclose()
