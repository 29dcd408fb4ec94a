"""Content-addressed blobs: `root/sha256/<hex>`, written through a temporary file that is renamed
into place only once its size and sha256 match the descriptor. A blob in the store is therefore
always whole and verified; a crash leaves at most a `*.part` file that gc removes."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from agent.image.errors import ImageError

PART = ".part"


def hex_of(digest: str) -> str:
    algo, _, hexdigest = digest.partition(":")
    if algo != "sha256" or len(hexdigest) != 64 or any(c not in "0123456789abcdef" for c in hexdigest):
        raise ImageError(f"unsupported digest {digest!r} (only sha256 is supported)")
    return hexdigest


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.dir = root / "sha256"
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.dir / hex_of(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def temp_path(self, digest: str) -> Path:
        return self.dir / f"{hex_of(digest)}.{uuid.uuid4().hex[:12]}{PART}"

    async def write(self, digest: str, size: int, chunks: AsyncIterator[bytes], what: str = "") -> Path:
        """Store the bytes of chunks as blob digest. Raises ImageError (and keeps nothing) when
        they are not exactly `size` bytes with that sha256. `what` prefixes the error message."""
        dest = self.path(digest)
        tmp = self.temp_path(digest)
        h = hashlib.sha256()
        got = 0
        prefix = f"{what}: " if what else ""
        try:
            with tmp.open("wb") as f:
                async for chunk in chunks:
                    got += len(chunk)
                    if got > size:
                        raise ImageError(f"{prefix}digest mismatch for {digest} (more than {size} bytes)")
                    h.update(chunk)
                    f.write(chunk)
            if got != size:
                raise ImageError(f"{prefix}digest mismatch for {digest} ({got} of {size} bytes)")
            if f"sha256:{h.hexdigest()}" != digest:
                raise ImageError(f"{prefix}digest mismatch for {digest} (got sha256:{h.hexdigest()})")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest
