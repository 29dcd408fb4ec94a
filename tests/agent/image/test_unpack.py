"""Layer unpacking (whiteouts, ownership, refusal of escapes) and blob verification, without a
registry. Needs root (mknod, chown, trusted.* xattrs)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agent.image import ImageError
from agent.image.blobs import BlobStore
from agent.image.unpack import unpack

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

Member = tuple[str, Callable[[tarfile.TarInfo], None], bytes]


def entry(name: str, data: bytes = b"", **attrs: object) -> Member:
    def set_attrs(info: tarfile.TarInfo) -> None:
        for k, v in attrs.items():
            setattr(info, k, v)

    return (name, set_attrs, data)


def layer(tmp_path: Path, *members: Member, gz: bool = False) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, set_attrs, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            set_attrs(info)
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    blob = tmp_path / "layer.tar"
    blob.write_bytes(gzip.compress(buf.getvalue()) if gz else buf.getvalue())
    return blob


def test_files_dirs_links_keep_their_metadata(tmp_path: Path) -> None:
    blob = layer(
        tmp_path,
        entry("bin/", type=tarfile.DIRTYPE, mode=0o755, mtime=1000),
        entry("bin/tool", b"#!/bin/sh\n", mode=0o4755, uid=0, gid=0, mtime=2000),
        entry("home/user/file", b"mine", mode=0o600, uid=1000, gid=1001, mtime=3000),
        entry("bin/sh", type=tarfile.SYMTYPE, linkname="/bin/tool"),
        entry("bin/rel", type=tarfile.SYMTYPE, linkname="../etc/none"),
        entry("bin/hard", type=tarfile.LNKTYPE, linkname="bin/tool"),
        entry("dev/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3),
        entry("fifo", type=tarfile.FIFOTYPE),
        gz=True,
    )
    out = unpack(blob, tmp_path / "out")
    tool = os.stat(out / "bin/tool")
    assert stat.S_IMODE(tool.st_mode) == 0o4755 and tool.st_mtime == 2000
    assert os.stat(out / "bin").st_mtime == 1000  # set after its children were written
    f = os.stat(out / "home/user/file")
    assert (f.st_uid, f.st_gid, stat.S_IMODE(f.st_mode)) == (1000, 1001, 0o600)
    assert os.readlink(out / "bin/sh") == "/bin/tool"  # kept: it resolves inside the container
    assert os.readlink(out / "bin/rel") == "../etc/none"
    assert os.stat(out / "bin/hard").st_ino == tool.st_ino
    assert not (out / "dev/null").exists() and not (out / "fifo").exists()


def test_whiteouts_become_overlayfs_whiteouts(tmp_path: Path) -> None:
    blob = layer(
        tmp_path,
        entry("etc/.wh.deleteme"),
        entry("opaque/.wh..wh..opq"),
        entry("opaque/new", b"x"),
        entry(".wh..wh.plnk"),  # aufs metadata: ignored
    )
    out = unpack(blob, tmp_path / "out")
    st = os.lstat(out / "etc/deleteme")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert os.getxattr(out / "opaque", "trusted.overlay.opaque") == b"y"
    assert not list(out.glob("**/.wh.*"))
    assert not (out / ".wh..wh.plnk").exists() and not (out / "plnk").exists()


@pytest.mark.parametrize(
    "evil",
    [
        entry("../escape", b"evil"),
        entry("/etc/absolute", b"evil"),
        entry("a/../../escape", b"evil"),
        entry("../.wh.escape"),
        entry("link", type=tarfile.LNKTYPE, linkname="../escape"),
        entry("link", type=tarfile.LNKTYPE, linkname="/etc/passwd"),
    ],
    ids=["dotdot", "absolute", "nested-dotdot", "whiteout-dotdot", "hardlink-dotdot", "hardlink-absolute"],
)
def test_escaping_members_are_refused(tmp_path: Path, evil: Member) -> None:
    blob = layer(tmp_path, entry("ok", b"fine"), evil)
    with pytest.raises(ImageError, match="escapes the layer root"):
        unpack(blob, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "escape").exists() and not (tmp_path / ".wh.escape").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer.tar"]  # no temp dir left


def test_writing_through_a_symlink_is_refused(tmp_path: Path) -> None:
    """`d -> /outside` then `d/file`: tar's classic escape."""
    outside = tmp_path / "outside"
    outside.mkdir()
    blob = layer(tmp_path, entry("d", type=tarfile.SYMTYPE, linkname=str(outside)), entry("d/file", b"evil"))
    with pytest.raises(ImageError, match="through a symlink"):
        unpack(blob, tmp_path / "out")
    assert list(outside.iterdir()) == []


def test_a_hard_link_to_a_symlink_does_not_follow_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("host file")
    victim.chmod(0o600)
    blob = layer(
        tmp_path,
        entry("s", type=tarfile.SYMTYPE, linkname=str(victim)),
        entry("h", type=tarfile.LNKTYPE, linkname="s", mode=0o777),
    )
    out = unpack(blob, tmp_path / "out")
    assert os.readlink(out / "h") == str(victim)
    assert os.stat(victim).st_nlink == 1 and stat.S_IMODE(os.stat(victim).st_mode) == 0o600


def test_a_hard_link_to_nothing_is_refused(tmp_path: Path) -> None:
    blob = layer(tmp_path, entry("h", type=tarfile.LNKTYPE, linkname="missing"))
    with pytest.raises(ImageError, match="lacks"):
        unpack(blob, tmp_path / "out")


def test_a_corrupt_tarball_is_an_image_error(tmp_path: Path) -> None:
    blob = tmp_path / "layer.tar.gz"
    blob.write_bytes(gzip.compress(b"not a tar" * 100)[:50])
    with pytest.raises(ImageError, match="cannot unpack layer"):
        unpack(blob, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_later_member_replaces_an_earlier_one(tmp_path: Path) -> None:
    blob = layer(
        tmp_path,
        entry("x", b"first"),
        entry("x", type=tarfile.SYMTYPE, linkname="y"),
        entry("d/f", b"1"),
        entry("d", b"now a file"),
    )
    out = unpack(blob, tmp_path / "out")
    assert os.readlink(out / "x") == "y"
    assert (out / "d").read_bytes() == b"now a file"


async def _chunks(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_a_blob_is_kept_only_when_size_and_digest_match(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    data = b"hello world, " * 10
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with pytest.raises(ImageError, match=f"digest mismatch for {digest}"):
        await blobs.write(digest, len(data), _chunks(data[:-1] + b"X"), what="image x")
    with pytest.raises(ImageError, match=r"digest mismatch .*\(129 of 130 bytes\)"):
        await blobs.write(digest, len(data), _chunks(data[:-1]))
    with pytest.raises(ImageError, match="more than"):
        await blobs.write(digest, len(data), _chunks(data + b"!"))
    assert not blobs.has(digest) and list(blobs.dir.iterdir()) == []
    path = await blobs.write(digest, len(data), _chunks(data))
    assert blobs.has(digest) and path.read_bytes() == data
    with pytest.raises(ImageError, match="only sha256"):
        blobs.path("sha512:abc")
