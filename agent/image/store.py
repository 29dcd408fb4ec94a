"""The image store of one agent: blobs by digest, layers unpacked once and shared, a record per
pulled image so that a restart (or the garbage collector) knows what is there.

    root/blobs/sha256/<hex>     verified blobs (image configs, layer tarballs)
    root/layers/<hex>/          unpacked layers, named after the layer blob's digest
    root/images/<hex>.json      pulled images by manifest digest: ref, name, config, layers
    root/indexes/<hex>          an index (manifest list) digest → the linux/amd64 manifest digest

Everything appears by rename, so a file or directory under its final name is complete. Pulls of
the same blob or layer wait on one asyncio lock per digest. gc may run in another thread (the
executor runs it with to_thread): digests that a pull in progress needs are registered under a
threading lock, and gc leaves them alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.image import manifest
from agent.image.blobs import BlobStore
from agent.image.errors import ImageError, RegistryUnreachable
from agent.image.reference import Reference, parse
from agent.image.registry import Registry
from agent.image.unpack import unpack
from shoal.log import get_logger

log = get_logger("image")

PARALLEL_DOWNLOADS = 3


@dataclass(frozen=True)
class PulledImage:
    ref: str  # as asked
    digest: str  # manifest digest "sha256:..."
    config: dict[str, Any]  # the image config's "config" object, {} if absent
    layers: list[Path]  # unpacked layer dirs, bottom (base) first


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


async def _manifest(reg: Registry, ref: Reference) -> tuple[str, str, bytes]:
    """(index digest or "", manifest digest, manifest body) of ref's linux/amd64 image."""
    media_type, body, digest = await reg.manifest(ref.manifest_ref)
    index = ""
    if media_type in manifest.INDEXES:
        index = digest
        try:
            chosen = manifest.choose_platform(body)
        except ImageError as e:
            raise ImageError(f"image {ref}: {e}") from None
        media_type, body, digest = await reg.manifest(chosen.digest)
    if media_type not in manifest.MANIFESTS:
        raise ImageError(f"image {ref}: unsupported manifest type {media_type!r}")
    return index, digest, body


async def resolve(ref: str, username: str | None = None, password: str | None = None) -> str:
    """ref pinned to the digest its tag names now (the index's, for a multi-platform image), as
    `host/repo:tag@sha256:...`: managers record it at service create so that every replica runs
    the same bytes. A reference that has a digest already is returned as it is."""
    r = parse(ref)
    if r.digest:
        return ref
    async with Registry(r, username, password) as reg:
        media_type, _, digest = await reg.manifest(r.manifest_ref)
    if media_type not in manifest.KNOWN:
        raise ImageError(f"image {r}: unsupported manifest type {media_type!r}")
    return str(r.pinned(digest))


class ImageStore:
    def __init__(self, root: Path, *, username: str | None = None, password: str | None = None) -> None:
        self.root = root
        self._creds = (username, password)
        self.blobs = BlobStore(root / "blobs")
        for d in ("layers", "images", "indexes"):
            (root / d).mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, asyncio.Lock] = {}
        self._guard = threading.Lock()
        self._active: Counter[str] = Counter()  # hex digests pulls in progress need

    # Paths

    def _layer(self, digest: str) -> Path:
        return self.root / "layers" / _hex(digest)

    def _record(self, digest: str) -> Path:
        return self.root / "images" / f"{_hex(digest)}.json"

    def _index(self, digest: str) -> Path:
        return self.root / "indexes" / _hex(digest)

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    @contextlib.contextmanager
    def _hold(self, digests: list[str]) -> Iterator[None]:
        """Keep gc away from these digests while a pull needs them."""
        hexes = [_hex(d) for d in digests]
        with self._guard:
            self._active.update(hexes)
        try:
            yield
        finally:
            with self._guard:
                self._active.subtract(hexes)
                self._active = +self._active

    # Records

    def _load(self, ref: str, digest: str) -> PulledImage | None:
        """The recorded image digest if it is all there, else None."""
        try:
            rec = json.loads(self._record(digest).read_text())
            image = PulledImage(ref, digest, rec["config"], [self._layer(d) for d in rec["layers"]])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return image if all(p.is_dir() for p in image.layers) else None

    def _cached(self, ref: str, digest: str) -> PulledImage | None:
        """The image a digest (of a manifest, or of an index we resolved before) names."""
        image = self._load(ref, digest)
        if image is None:
            with contextlib.suppress(OSError):
                image = self._load(ref, self._index(digest).read_text().strip())
        return image

    def _by_name(self, ref: str, name: str) -> PulledImage | None:
        """The image last pulled under a tag reference (for when its registry is unreachable)."""
        best: tuple[float, PulledImage] | None = None
        for path in (self.root / "images").glob("*.json"):
            try:
                rec = json.loads(path.read_text())
                mtime = path.stat().st_mtime
            except (OSError, ValueError):
                continue
            if rec.get("name") == name and (best is None or mtime > best[0]):
                image = self._load(ref, "sha256:" + path.stem)
                if image is not None:
                    best = (mtime, image)
        return best[1] if best else None

    def _write(self, path: Path, text: str) -> None:
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def images(self) -> list[str]:
        """The manifest digests of the images in the store."""
        return ["sha256:" + p.stem for p in (self.root / "images").glob("*.json")]

    # Pulling

    async def resolve(self, ref: str) -> str:
        return await resolve(ref, *self._creds)

    async def pull(self, ref: str) -> PulledImage:
        r = parse(ref)
        if r.digest and (image := self._cached(ref, r.digest)):
            return image
        try:
            return await self._pull(ref, r)
        except RegistryUnreachable as e:
            image = None if r.digest else self._by_name(ref, str(r))
            if image is None:
                raise
            log.warning("image_registry_unreachable_using_cached", ref=ref, digest=image.digest, error=str(e))
            return image

    async def _pull(self, ref: str, r: Reference) -> PulledImage:
        async with Registry(r, *self._creds) as reg:
            index, digest, body = await _manifest(reg, r)
            if index:
                self._write(self._index(index), digest)
            m = manifest.parse_manifest(body)
            for d in m.layers:
                if d.media_type and d.media_type not in manifest.LAYERS:
                    raise ImageError(f"image {r}: unsupported layer type {d.media_type!r}")
            with self._hold([digest, m.config.digest, *(d.digest for d in m.layers)]):
                image = self._load(ref, digest)
                if image is not None:
                    os.utime(self._record(digest))  # the newest pull of its name
                    return image
                config_blob = await self._fetch(reg, m.config)
                layers = await self._layers(reg, m.layers)
                config = manifest.parse_config(config_blob.read_bytes())
                record = {
                    "ref": ref,
                    "name": str(r),
                    "digest": digest,
                    "index": index,
                    "config": config,
                    "config_digest": m.config.digest,
                    "layers": [d.digest for d in m.layers],
                }
                self._write(self._record(digest), json.dumps(record))
        log.info("image_pulled", ref=ref, digest=digest, layers=len(layers))
        return PulledImage(ref, digest, config, layers)

    async def _layers(self, reg: Registry, descs: list[manifest.Descriptor]) -> list[Path]:
        """Every layer fetched and unpacked, a few at a time; the first error is raised as is."""
        sem = asyncio.Semaphore(PARALLEL_DOWNLOADS)

        async def one(d: manifest.Descriptor) -> Path:
            async with sem:
                return await self._layer_dir(reg, d)

        try:
            async with asyncio.TaskGroup() as tg:
                jobs = [tg.create_task(one(d)) for d in descs]
        except BaseExceptionGroup as eg:
            raise eg.exceptions[0] from None
        return [j.result() for j in jobs]

    async def _fetch(self, reg: Registry, d: manifest.Descriptor) -> Path:
        async with self._lock(d.digest):
            if not self.blobs.has(d.digest):
                log.debug("image_blob_fetch", digest=d.digest, size=d.size)
                await reg.blob(d.digest, d.size, self.blobs)
        return self.blobs.path(d.digest)

    async def _layer_dir(self, reg: Registry, d: manifest.Descriptor) -> Path:
        dest = self._layer(d.digest)
        if dest.is_dir():
            return dest
        blob = await self._fetch(reg, d)
        async with self._lock("layer:" + d.digest):
            if not dest.is_dir():
                await asyncio.to_thread(unpack, blob, dest)
        return dest

    # Garbage collection

    def gc(self, in_use: set[str]) -> list[Path]:
        """Remove the images whose digest (manifest or index) is not in in_use, and every blob and
        layer that no remaining image (nor a pull in progress) needs. Returns what was removed."""
        removed: list[Path] = []
        with self._guard:
            wanted = {_hex(d) for d in in_use}
            for alias in (self.root / "indexes").iterdir():
                if alias.name in wanted:
                    with contextlib.suppress(OSError):
                        wanted.add(_hex(alias.read_text().strip()))
            keep = set(self._active)
            for path in (self.root / "images").iterdir():
                if path.suffix == ".json" and path.stem in wanted:
                    try:
                        rec = json.loads(path.read_text())
                        keep.add(path.stem)
                        keep.update(_hex(d) for d in [*rec["layers"], rec["config_digest"]])
                        continue
                    except (OSError, ValueError, KeyError, TypeError):
                        pass  # unreadable: pulled again when needed
                if path.stem.split(".")[0] not in self._active:
                    removed.append(path)
            for alias in (self.root / "indexes").iterdir():
                with contextlib.suppress(OSError):
                    if alias.name not in self._active and _hex(alias.read_text().strip()) not in keep:
                        removed.append(alias)
            for kind in ("layers", "blobs/sha256"):
                for path in (self.root / kind).iterdir():
                    if path.name.split(".")[0] not in keep:
                        removed.append(path)
            for path in removed:
                with contextlib.suppress(FileNotFoundError):
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    else:
                        path.unlink()
        if removed:
            log.info("image_gc", removed=len(removed))
        return removed
