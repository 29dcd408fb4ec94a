"""The image store of one agent: blobs by digest, layers unpacked once and shared, a record per
pulled image so a restart (or the garbage collector) knows what is there.

    root/blobs/sha256/<hex>     verified blobs (manifests, configs, layer tarballs)
    root/layers/<hex>/          unpacked layers (named after the layer blob's digest)
    root/images/<hex>.json      pulled images: reference, manifest digest, config, layers
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.image import manifest
from agent.image.errors import ImageError
from agent.image.reference import Reference, parse
from agent.image.registry import Registry
from agent.image.unpack import unpack
from shoal.log import get_logger

log = get_logger("image")


@dataclass(frozen=True)
class PulledImage:
    ref: str
    digest: str
    config: dict[str, Any]
    layers: list[Path]


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


async def resolve(ref: str, username: str | None = None, password: str | None = None) -> str:
    """The reference pinned to the digest of what its tag points at now (what managers record
    at service create, so that every replica runs the same bytes)."""
    r = parse(ref)
    if r.digest:
        return ref
    async with Registry(r, username, password) as reg:
        _, _, digest = await reg.manifest(r.manifest_ref)
    return str(r.pinned(digest))


class ImageStore:
    def __init__(self, root: Path, *, username: str | None = None, password: str | None = None) -> None:
        self.root = root
        self._creds = (username, password)
        for d in ("blobs/sha256", "layers", "images"):
            (root / d).mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def _blob(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / _hex(digest)

    def _layer(self, digest: str) -> Path:
        return self.root / "layers" / _hex(digest)

    def _record(self, digest: str) -> Path:
        return self.root / "images" / f"{_hex(digest)}.json"

    def _registry(self, ref: Reference) -> Registry:
        return Registry(ref, *self._creds)

    async def _manifest(self, reg: Registry, ref: Reference) -> tuple[str, bytes]:
        """The linux/amd64 image manifest (digest, body) for ref, through an index if need be."""
        media_type, body, digest = await reg.manifest(ref.manifest_ref)
        if media_type in manifest.INDEXES:
            chosen = manifest.choose_platform(body)
            media_type, body, digest = await reg.manifest(chosen.digest)
        if media_type not in manifest.MANIFESTS:
            raise ImageError(f"image {ref}: unsupported manifest type {media_type!r}")
        return digest, body

    async def resolve(self, ref: str) -> str:
        return await resolve(ref, *self._creds)

    async def pull(self, ref: str) -> PulledImage:
        r = parse(ref)
        if r.digest and self._record(r.digest).exists():
            return self._load(ref, r.digest)
        async with self._registry(r) as reg:
            digest, body = await self._manifest(reg, r)
            if self._record(digest).exists():
                return self._load(ref, digest)
            m = manifest.parse_manifest(body)
            await self._fetch(reg, m.config)
            layers = []
            for d in m.layers:
                if d.media_type and d.media_type not in (*manifest.GZIP_LAYERS, *manifest.TAR_LAYERS):
                    raise ImageError(f"image {r}: unsupported layer type {d.media_type!r}")
                layers.append(await self._layer_dir(reg, d))
        config = json.loads(self._blob(m.config.digest).read_bytes()).get("config") or {}
        record = {
            "ref": ref,
            "digest": digest,
            "config": config,
            "config_digest": m.config.digest,
            "layers": [d.digest for d in m.layers],
        }
        tmp = self._record(digest).with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, self._record(digest))
        log.info("image_pulled", ref=ref, digest=digest, layers=len(layers))
        return PulledImage(ref, digest, config, layers)

    def _load(self, ref: str, digest: str) -> PulledImage:
        rec = json.loads(self._record(digest).read_text())
        return PulledImage(ref, digest, rec["config"], [self._layer(d) for d in rec["layers"]])

    async def _fetch(self, reg: Registry, d: manifest.Descriptor) -> Path:
        path = self._blob(d.digest)
        async with self._lock(d.digest):
            if not path.exists():
                await reg.blob(d.digest, d.size, path)
        return path

    async def _layer_dir(self, reg: Registry, d: manifest.Descriptor) -> Path:
        dest = self._layer(d.digest)
        blob = await self._fetch(reg, d)
        async with self._lock("layer:" + d.digest):
            if not dest.exists():
                await asyncio.to_thread(unpack, blob, dest)
        return dest

    def images(self) -> list[str]:
        return ["sha256:" + p.stem for p in (self.root / "images").glob("*.json")]

    def gc(self, in_use: set[str]) -> list[Path]:
        """Remove images whose manifest digest is not in in_use, and every blob and layer that no
        remaining image needs. Returns what was removed."""
        removed: list[Path] = []
        keep_blobs: set[str] = set()
        for digest in self.images():
            rec_path = self._record(digest)
            rec = json.loads(rec_path.read_text())
            if digest in in_use:
                keep_blobs.update(_hex(d) for d in [*rec["layers"], rec.get("config_digest", "")])
                continue
            rec_path.unlink()
            removed.append(rec_path)
        for kind in ("layers", "blobs/sha256"):
            for p in (self.root / kind).iterdir():
                if p.name.split(".")[0] in keep_blobs:
                    continue
                shutil.rmtree(p) if p.is_dir() else p.unlink()
                removed.append(p)
        return removed
