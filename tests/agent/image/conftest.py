"""A real registry (Debian's docker-registry on 127.0.0.1 and a free port) seeded with the lab's
busybox images, and helpers that push hand-made images to it through the distribution API."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import socket
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from swarmlab import registry as lab_registry

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class Registry:
    addr: str
    data_dir: Path

    def blob_file(self, digest: str) -> Path:
        hexd = digest.removeprefix("sha256:")
        return self.data_dir / "data/docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        with httpx.Client(base_url=f"http://{self.addr}") as c:
            r = c.post(f"/v2/{repo}/blobs/uploads/")
            assert r.status_code == 202, r.text
            location = r.headers["Location"]  # keeps its _state query
            url = f"{location}{'&' if '?' in location else '?'}digest={digest}"
            r = c.put(url, content=data, headers={"Content-Type": "application/octet-stream"})
            assert r.status_code == 201, r.text
        return digest

    def push_manifest(self, repo: str, tag: str, media_type: str, doc: dict[str, object]) -> str:
        body = json.dumps(doc).encode()
        with httpx.Client(base_url=f"http://{self.addr}") as c:
            r = c.put(f"/v2/{repo}/manifests/{tag}", content=body, headers={"Content-Type": media_type})
            assert r.status_code == 201, r.text
        return sha256(body)

    def push_image(
        self, repo: str, tag: str, files: dict[str, bytes], *, docker: bool = False, arch: str = "amd64"
    ) -> tuple[str, str]:
        """A one-layer image of files; returns (manifest digest, layer digest)."""
        raw = tar_of(files)
        layer = gzip.compress(raw, mtime=0)
        config = json.dumps({
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["cat", "/hello"], "Env": ["A=1"]},
            "rootfs": {"type": "layers", "diff_ids": [sha256(raw)]},
        }).encode()  # fmt: skip
        doc = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                       "digest": self.push_blob(repo, config), "size": len(config)},
            "layers": [{"mediaType": DOCKER_LAYER if docker else OCI_LAYER,
                        "digest": self.push_blob(repo, layer), "size": len(layer)}],
        }  # fmt: skip
        return self.push_manifest(repo, tag, str(doc["mediaType"]), doc), sha256(layer)


@pytest.fixture(scope="session")
def lab_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The busybox layouts, built once per machine (cached like the lab's)."""
    if not Path(lab_registry.REGISTRY).exists():
        pytest.skip("needs docker-registry, umoci, skopeo, busybox-static (scripts/apt-packages.txt)")
    return lab_registry.build_images(lab_registry.CACHE)


@pytest.fixture(scope="session")
def reg(tmp_path_factory: pytest.TempPathFactory, lab_images: Path) -> Iterator[Registry]:
    data_dir = tmp_path_factory.mktemp("registry")
    addr = f"127.0.0.1:{free_port()}"
    proc = lab_registry.start_registry(data_dir, addr)
    try:
        lab_registry.seed(addr, lab_registry.CACHE)
        yield Registry(addr, data_dir)
    finally:
        lab_registry.stop_registry(proc)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(autouse=True)
def _remove_tmp_path(tmp_path: Path) -> Iterator[None]:
    """Image stores hold device nodes and big trees: don't leave them to pytest's retention."""
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture
def registry(reg: Registry) -> str:
    return reg.addr
