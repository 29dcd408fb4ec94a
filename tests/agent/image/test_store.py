"""The image store against a real registry (Debian's docker-registry on loopback)."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.image import ImageError, ImageStore, parse
from agent.image.unpack import unpack
from swarmlab import registry as lab_registry

pytestmark = pytest.mark.skipif(not Path(lab_registry.REGISTRY).exists(), reason="needs docker-registry")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    addr = f"127.0.0.1:{free_port()}"
    proc = lab_registry.start_registry(tmp_path_factory.mktemp("registry"), addr)
    try:
        lab_registry.seed(addr)
        yield addr
    finally:
        lab_registry.stop_registry(proc)


def test_reference_parsing() -> None:
    assert str(parse("busybox")) == "docker.io/library/busybox:latest"
    assert str(parse("10.0.0.1:5000/team/app:v1")) == "10.0.0.1:5000/team/app:v1"
    r = parse("localhost/app@sha256:" + "a" * 64)
    assert (r.host, r.repo, r.tag, r.digest) == ("localhost", "app", "", "sha256:" + "a" * 64)
    assert parse("127.0.0.1:5000/x").scheme == "http" and parse("ghcr.io/x/y").scheme == "https"
    for bad in ("", "Busybox", "app:bad tag", "app@sha256:123", "a b"):
        with pytest.raises(ImageError, match="invalid image reference"):
            parse(bad)


async def test_pull_unpacks_and_reuses(registry: str, tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    img = await store.pull(f"{registry}/busybox:latest")
    assert img.config["Cmd"] == ["sh"]
    assert (img.layers[-1] / "bin" / "busybox").exists()
    blobs = {p: p.stat().st_mtime_ns for p in (tmp_path / "blobs" / "sha256").iterdir()}
    again = await store.pull(f"{registry}/busybox:latest")
    assert again.layers == img.layers
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "blobs" / "sha256").iterdir()} == blobs

    pinned = await store.resolve(f"{registry}/busybox:latest")
    assert pinned == f"{registry}/busybox:latest@{img.digest}"
    assert (await store.pull(pinned)).digest == img.digest


async def test_whiteout_hides_the_file(registry: str, tmp_path: Path) -> None:
    img = await ImageStore(tmp_path / "store").pull(f"{registry}/whiteout:latest")
    assert any((layer / "etc" / "deleteme").is_file() for layer in img.layers)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    lower = ":".join(str(p) for p in reversed(img.layers))
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower}", str(mnt)], check=True)  # noqa: ASYNC221
    try:
        assert (mnt / "bin" / "busybox").exists()
        assert not (mnt / "etc" / "deleteme").exists()
    finally:
        subprocess.run(["umount", str(mnt)], check=True)  # noqa: ASYNC221


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("{r}/busybox:nope", "manifest unknown (nope not found)"),
        ("{r}/nothere:latest", "repository nothere not found"),
        ("127.0.0.1:1/busybox:latest", "unreachable"),
    ],
)
async def test_clear_errors(registry: str, tmp_path: Path, ref: str, message: str) -> None:
    with pytest.raises(ImageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        await ImageStore(tmp_path).pull(ref.format(r=registry))


async def test_bad_digest_is_refused(registry: str, tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    img = await store.pull(f"{registry}/busybox:latest")
    wrong = "sha256:" + "0" * 64
    with pytest.raises(ImageError, match=r"not found|digest mismatch"):
        await ImageStore(tmp_path / "other").pull(f"{registry}/busybox@{wrong}")
    assert img.digest != wrong


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("name", ["../escape", "/etc/absolute", "a/../../b"])
def test_escaping_members_are_refused(tmp_path: Path, name: str) -> None:
    blob = tmp_path / "layer.tar"
    blob.write_bytes(_tar({"ok": b"fine", name: b"evil"}))
    with pytest.raises(ImageError, match="escapes"):
        unpack(blob, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape").exists()


async def test_gc_removes_unused_images(registry: str, tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    keep = await store.pull(f"{registry}/busybox:latest")
    drop = await store.pull(f"{registry}/whiteout:latest")
    removed = store.gc({keep.digest})
    assert removed
    assert all(layer.exists() for layer in keep.layers)
    assert not drop.layers[-1].exists()
    assert store.images() == [keep.digest]
    assert os.listdir(tmp_path / "blobs" / "sha256")


async def test_executor_collects_images_no_container_uses(registry: str, tmp_path: Path) -> None:
    from agent.runtime import cgroups
    from agent.runtime.executor import ContainerExecutor
    from shoal import ids
    from shoal.api import Task

    ex = ContainerExecutor(tmp_path, "gc-test", cgroup_parent=f"shoal-gc-{ids.new_id()[:6]}")
    store = ex.images
    assert isinstance(store, ImageStore)
    t = Task(id=ids.new_id())
    t.spec.container.image = f"{registry}/busybox:latest"
    t.spec.container.args.extend(["sleep", "100"])
    c = ex.controller(t)
    try:
        await c.prepare()
        unused = await store.pull(f"{registry}/whiteout:latest")
        assert await ex.gc() > 0
        assert len(store.images()) == 1 and unused.digest not in store.images()
        await c.start()
        assert (await c.inspect()).running
    finally:
        await c.remove()
        cgroups.remove_parent(ex.cgroup_parent)
    await ex.gc()
    assert store.images() == []


def test_an_index_gives_the_linux_amd64_manifest() -> None:
    import json

    from agent.image import manifest

    index = {
        "manifests": [
            {"digest": "sha256:" + "a" * 64, "size": 1, "platform": {"os": "linux", "architecture": "arm64"}},
            {"digest": "sha256:" + "b" * 64, "size": 2, "platform": {"os": "linux", "architecture": "amd64"}},
        ]
    }
    assert manifest.choose_platform(json.dumps(index).encode()).digest == "sha256:" + "b" * 64
    with pytest.raises(ImageError, match="no linux/amd64"):
        manifest.choose_platform(json.dumps({"manifests": index["manifests"][:1]}).encode())
