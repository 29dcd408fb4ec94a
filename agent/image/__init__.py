"""Images on an agent: an OCI distribution client, a content-addressed blob store, and layers
unpacked once (with whiteouts) for overlayfs."""

from agent.image.errors import ImageError
from agent.image.reference import Reference, parse
from agent.image.store import ImageStore, PulledImage, resolve

__all__ = ["ImageError", "ImageStore", "PulledImage", "Reference", "parse", "resolve"]
