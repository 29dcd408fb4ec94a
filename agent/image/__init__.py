"""Images on an agent: an OCI distribution client, a content-addressed blob store, and layers
unpacked once (with whiteouts) for overlayfs.

    store = ImageStore(state_dir / "images")
    image = await store.pull("127.0.0.1:5000/busybox:latest")   # PulledImage
    pinned = await store.resolve("busybox")   # docker.io/library/busybox:latest@sha256:...
    store.gc({image.digest})
"""

from agent.image.errors import ImageError, RegistryUnreachable
from agent.image.reference import Reference, parse
from agent.image.store import ImageStore, PulledImage, resolve

__all__ = ["ImageError", "ImageStore", "PulledImage", "Reference", "RegistryUnreachable", "parse", "resolve"]
