"""The image store against a real registry: Debian's docker-registry on 127.0.0.1, seeded with
the lab's busybox images (conftest.py), plus hand-made images pushed through the API."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

import agent.image.store
from agent.image import ImageError, ImageStore, RegistryUnreachable, parse
from agent.image.registry import Registry as RegistryClient
from tests.agent.image.conftest import DOCKER_LIST, OCI_INDEX, Registry, free_port

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def count_blob_fetches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    fetched: list[str] = []
    original = RegistryClient.blob

    async def blob(self: RegistryClient, digest: str, size: int, blobs: Any) -> None:
        fetched.append(digest)
        await original(self, digest, size, blobs)

    monkeypatch.setattr(RegistryClient, "blob", blob)
    return fetched


def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the registry was asked")

    monkeypatch.setattr(agent.image.store, "Registry", refuse)


async def test_pull_unpacks_and_reuses(
    registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetched = count_blob_fetches(monkeypatch)
    store = ImageStore(tmp_path)
    ref = f"{registry}/busybox:latest"
    img = await store.pull(ref)
    assert img.ref == ref and img.digest.startswith("sha256:")
    assert img.config["Cmd"] == ["sh"]
    assert any(e.startswith("PATH=") for e in img.config["Env"])
    assert len(img.layers) == 1 and img.layers[0] == tmp_path / "layers" / fetched[-1].removeprefix("sha256:")
    root = img.layers[0]
    assert (root / "bin/busybox").is_file() and os.readlink(root / "bin/sh") == "busybox"
    assert "nobody" in (root / "etc/passwd").read_text()
    assert stat.S_IMODE(os.stat(root / "tmp").st_mode) == 0o1777
    assert len(fetched) == 2  # config + layer

    again = await store.pull(ref)  # a tag: the manifest is asked again, nothing else
    assert again == img and len(fetched) == 2

    pinned = await store.resolve(ref)
    assert pinned == f"{registry}/busybox:latest@{img.digest}"
    assert (await store.pull(pinned)).digest == img.digest
    no_network(monkeypatch)  # a digest already here: no network I/O at all
    assert (await store.pull(pinned)).layers == img.layers
    assert (await ImageStore(tmp_path).pull(pinned)).config == img.config  # a restart keeps it


async def test_images_sharing_a_base_share_its_layer(registry: str, tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    one, two = await asyncio.gather(
        store.pull(f"{registry}/busybox:latest"), store.pull(f"{registry}/busybox:2")
    )
    assert one.digest != two.digest
    assert two.layers[0] == one.layers[0] and (two.layers[1] / "etc/version").read_text() == "2\n"
    assert sorted(p.name for p in (tmp_path / "layers").iterdir()) == sorted(
        {p.name for p in one.layers + two.layers}
    )


async def test_concurrent_pulls_of_one_image(
    registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetched = count_blob_fetches(monkeypatch)
    store = ImageStore(tmp_path)
    images = await asyncio.gather(*(store.pull(f"{registry}/whiteout:latest") for _ in range(4)))
    assert all(i == images[0] for i in images)
    assert sorted(fetched) == sorted(set(fetched))  # each blob once
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith((".part", ".unpacking", ".tmp"))]
    assert leftovers == []


async def test_whiteout_hides_the_file(registry: str, tmp_path: Path) -> None:
    img = await ImageStore(tmp_path / "store").pull(f"{registry}/whiteout:latest")
    below, top = img.layers[-2], img.layers[-1]
    assert (below / "etc/deleteme").is_file()
    st = os.lstat(top / "etc/deleteme")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    lower = ":".join(str(p) for p in reversed(img.layers))  # top first
    mount = ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower}", str(mnt)]
    await asyncio.to_thread(subprocess.run, mount, check=True)
    try:
        assert (mnt / "bin/busybox").exists()
        assert (mnt / "etc/passwd").exists()
        assert not (mnt / "etc/deleteme").exists()
    finally:
        await asyncio.to_thread(subprocess.run, ["umount", str(mnt)], check=True)


async def test_an_index_gives_the_linux_amd64_image(reg: Registry, tmp_path: Path) -> None:
    """OCI index and Docker manifest list, to OCI and Docker manifests: decided by Content-Type."""
    for index_type, docker in ((OCI_INDEX, False), (DOCKER_LIST, True)):
        repo = f"multi-{uuid.uuid4().hex[:8]}"
        arm, _ = reg.push_image(repo, "arm", {"hello": b"arm64\n"}, docker=docker, arch="arm64")
        amd, _ = reg.push_image(repo, "amd", {"hello": b"amd64\n"}, docker=docker)
        manifest_type = "application/vnd.docker.distribution.manifest.v2+json" if docker else (
            "application/vnd.oci.image.manifest.v1+json")  # fmt: skip

        def desc(digest: str, arch: str, mt: str = manifest_type) -> dict[str, Any]:
            size = len((reg.blob_file(digest)).read_bytes())
            return {"mediaType": mt, "digest": digest, "size": size,
                    "platform": {"os": "linux", "architecture": arch}}  # fmt: skip

        doc = {
            "schemaVersion": 2,
            "mediaType": index_type,
            "manifests": [desc(arm, "arm64"), desc(amd, "amd64")],
        }
        index = reg.push_manifest(repo, "latest", index_type, doc)

        store = ImageStore(tmp_path / repo)
        ref = f"{reg.addr}/{repo}:latest"
        img = await store.pull(ref)
        assert img.digest == amd and (img.layers[0] / "hello").read_text() == "amd64\n"
        assert img.config["Cmd"] == ["cat", "/hello"]
        pinned = await store.resolve(ref)
        assert pinned == f"{ref}@{index}"  # the index: what every node then resolves for itself
        assert (await store.pull(pinned)).digest == amd
        with pytest.MonkeyPatch.context() as mp:
            no_network(mp)
            assert (await store.pull(pinned)).digest == amd
        assert store.gc({index}) == []  # an index digest in use keeps its image


async def test_arm64_only_is_refused(reg: Registry, tmp_path: Path) -> None:
    repo = f"armonly-{uuid.uuid4().hex[:8]}"
    arm, _ = reg.push_image(repo, "arm", {"hello": b"arm64\n"}, arch="arm64")
    size = len(reg.blob_file(arm).read_bytes())
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm, "size": size,
         "platform": {"os": "linux", "architecture": "arm64"}}]}  # fmt: skip
    reg.push_manifest(repo, "latest", OCI_INDEX, doc)
    with pytest.raises(ImageError, match="no linux/amd64 variant"):
        await ImageStore(tmp_path).pull(f"{reg.addr}/{repo}:latest")


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("{r}/busybox:nope", r"image {r}/busybox:nope: manifest unknown \(tag nope not found\)"),
        ("{r}/busybox@sha256:" + "0" * 64, r"manifest unknown \(digest sha256:0+ not found\)"),
        ("{r}/nothere:latest", r"image {r}/nothere:latest: repository nothere not found"),
        ("127.0.0.1:{closed}/busybox:latest", r"registry 127.0.0.1:\d+ unreachable: "),
        ("{r}/Bad", r"invalid image reference"),
    ],
)
async def test_clear_errors(registry: str, tmp_path: Path, ref: str, message: str) -> None:
    closed = free_port()
    ref = ref.format(r=registry, closed=closed)
    with pytest.raises(ImageError, match=message.format(r=registry)):
        await ImageStore(tmp_path).pull(ref)
    if "unreachable" in message:
        with pytest.raises(RegistryUnreachable):
            await ImageStore(tmp_path).resolve(ref)
    assert list((tmp_path / "images").iterdir()) == []


async def test_a_corrupt_blob_is_refused(reg: Registry, tmp_path: Path) -> None:
    repo = f"corrupt-{uuid.uuid4().hex[:8]}"
    _, layer = reg.push_image(repo, "latest", {"hello": uuid.uuid4().bytes})
    data = reg.blob_file(layer)
    content = bytearray(data.read_bytes())
    content[-1] ^= 0xFF  # same size, other bytes
    data.write_bytes(bytes(content))
    store = ImageStore(tmp_path)
    with pytest.raises(ImageError, match=f"digest mismatch for {layer}"):
        await store.pull(f"{reg.addr}/{repo}:latest")
    assert not (tmp_path / "layers" / layer.removeprefix("sha256:")).exists()
    assert store.images() == [] and not store.blobs.has(layer)


async def test_a_cached_tag_serves_while_the_registry_is_unreachable(
    registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ImageStore(tmp_path)
    img = await store.pull(f"{registry}/busybox:latest")

    async def unreachable(self: RegistryClient, reference: str) -> None:
        raise RegistryUnreachable(f"image {self.ref}: registry {self.ref.host} unreachable: down")

    monkeypatch.setattr(RegistryClient, "manifest", unreachable)
    assert (await store.pull(f"{registry}/busybox")).digest == img.digest  # the same name, normalised
    with pytest.raises(RegistryUnreachable):
        await store.pull(f"{registry}/busybox:2")  # never pulled


async def test_gc_removes_unused_images(registry: str, tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    keep = await store.pull(f"{registry}/busybox:latest")
    drop = await store.pull(f"{registry}/whiteout:latest")
    assert drop.layers[0] == keep.layers[0]  # the shared base
    (tmp_path / "blobs/sha256/abc.123.part").write_text("a crash left this")
    removed = store.gc({keep.digest})
    assert tmp_path / "images" / f"{drop.digest.removeprefix('sha256:')}.json" in removed
    assert all(layer.exists() for layer in keep.layers)
    assert not drop.layers[1].exists() and not drop.layers[2].exists()
    assert not (tmp_path / "blobs/sha256/abc.123.part").exists()
    assert store.images() == [keep.digest]
    assert store.gc({keep.digest}) == []
    assert (await store.pull(f"{registry}/busybox:latest")).layers == keep.layers

    with store._hold([keep.digest, *(f"sha256:{p.name}" for p in keep.layers)]):
        store.gc(set())  # a pull in progress: its layers stay
        assert all(layer.exists() for layer in keep.layers)
    store.gc(set())
    assert store.images() == [] and list((tmp_path / "layers").iterdir()) == []
    assert list((tmp_path / "blobs/sha256").iterdir()) == []


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


def test_reference_of_the_seeded_images(registry: str) -> None:
    assert parse(f"{registry}/busybox").scheme == "http"
