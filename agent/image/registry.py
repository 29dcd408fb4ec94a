"""The OCI distribution API, read-only: ping, manifests, blobs. Anonymous bearer tokens (the
registry's WWW-Authenticate challenge) and basic auth. Blobs are streamed to disk with their
size and sha256 checked on the way."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from pathlib import Path

import httpx

from agent.image import manifest
from agent.image.errors import ImageError
from agent.image.reference import Reference

TIMEOUT = httpx.Timeout(30.0, connect=5.0)


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, params = header.partition(" ")
    items = urllib.request.parse_keqv_list(urllib.request.parse_http_list(params))
    return scheme.lower(), items


def _error_codes(resp: httpx.Response) -> list[str]:
    try:
        return [str(e.get("code", "")) for e in resp.json().get("errors", [])]
    except (ValueError, AttributeError):
        return []


class Registry:
    def __init__(self, ref: Reference, username: str | None = None, password: str | None = None) -> None:
        self.ref = ref
        self._base = f"{ref.scheme}://{ref.api_host}/v2/{ref.repo}"
        self._auth = (username, password) if username and password else None
        self._token: str | None = None
        self._client = httpx.AsyncClient(follow_redirects=True, timeout=TIMEOUT)

    async def close(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Registry:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _unreachable(self, e: Exception) -> ImageError:
        return ImageError(f"image {self.ref}: registry {self.ref.host} unreachable: {e or type(e).__name__}")

    def _headers(self, extra: dict[str, str]) -> dict[str, str]:
        h = dict(extra)
        if self._token:
            h["Authorization"] = f"Bearer {self._token}"
        return h

    async def _login(self, resp: httpx.Response) -> None:
        scheme, params = _challenge(resp.headers.get("WWW-Authenticate", ""))
        if scheme == "basic":
            if self._auth is None:
                raise ImageError(f"image {self.ref}: the registry wants credentials")
            return  # httpx sends them on the retry (self._auth)
        if scheme != "bearer" or "realm" not in params:
            raise ImageError(f"image {self.ref}: unsupported registry authentication {scheme!r}")
        query = {
            "service": params.get("service", ""),
            "scope": params.get("scope", f"repository:{self.ref.repo}:pull"),
        }
        r = await self._client.get(params["realm"], params=query, auth=self._auth)
        if r.status_code != 200:
            raise ImageError(f"image {self.ref}: token request refused ({r.status_code})")
        body = r.json()
        self._token = body.get("token") or body.get("access_token")

    async def _get(self, url: str, headers: dict[str, str], stream: bool = False) -> httpx.Response:
        for attempt in range(2):
            try:
                req = self._client.build_request("GET", url, headers=self._headers(headers))
                basic = None if self._token or self._auth is None else httpx.BasicAuth(*self._auth)
                resp = await self._client.send(req, stream=stream, auth=basic)
            except (httpx.TransportError, OSError) as e:
                raise self._unreachable(e) from None
            if resp.status_code == 401 and attempt == 0:
                await resp.aclose()
                await self._login(resp)
                continue
            return resp
        return resp

    async def manifest(self, reference: str) -> tuple[str, bytes, str]:
        """(media type, body, digest) of a tag or digest."""
        resp = await self._get(f"{self._base}/manifests/{reference}", {"Accept": manifest.ACCEPT})
        if resp.status_code == 404:
            codes = _error_codes(resp)
            if "NAME_UNKNOWN" not in codes:  # some registries say MANIFEST_UNKNOWN for both
                tags = await self._get(f"{self._base}/tags/list", {})
                if tags.status_code == 404:
                    codes = _error_codes(tags) or ["NAME_UNKNOWN"]
            if "NAME_UNKNOWN" in codes:
                raise ImageError(f"image {self.ref}: repository {self.ref.repo} not found")
            raise ImageError(f"image {self.ref}: manifest unknown ({reference} not found)")
        if resp.status_code != 200:
            raise ImageError(f"image {self.ref}: registry answered {resp.status_code} for the manifest")
        body = resp.content
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise ImageError(f"image {self.ref}: digest mismatch for manifest {reference}")
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        if media_type not in (*manifest.INDEXES, *manifest.MANIFESTS):
            media_type = str(json.loads(body).get("mediaType", media_type))
        return media_type, body, digest

    async def blob(self, digest: str, size: int, dest: Path) -> None:
        """Stream a blob to dest, verifying its size and digest; nothing is left on failure."""
        tmp = dest.with_name(dest.name + f".{os.getpid()}.part")
        h = hashlib.sha256()
        got = 0
        try:
            resp = await self._get(
                f"{self._base}/blobs/{digest}", {"Accept-Encoding": "identity"}, stream=True
            )
            try:
                if resp.status_code != 200:
                    raise ImageError(f"image {self.ref}: blob {digest} not found ({resp.status_code})")
                with tmp.open("wb") as f:
                    async for chunk in resp.aiter_raw():
                        h.update(chunk)
                        got += len(chunk)
                        f.write(chunk)
            except httpx.TransportError as e:
                raise self._unreachable(e) from None
            finally:
                await resp.aclose()
            if got != size or "sha256:" + h.hexdigest() != digest:
                raise ImageError(f"image {self.ref}: digest mismatch for blob {digest} ({got} bytes)")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
