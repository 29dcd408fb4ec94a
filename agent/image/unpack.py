"""Unpacking a layer tarball into a directory usable as an overlayfs lower layer.

Whiteouts become what overlayfs understands: `.wh.NAME` → a 0:0 character device NAME;
`.wh..wh..opq` → the `trusted.overlay.opaque=y` xattr on its directory.

Why not `tarfile.extractall(filter="data")`: it refuses absolute symlinks, which every rootfs has
(they resolve inside the container after pivot_root), and knows nothing of whiteouts. So each
member is vetted here instead. Refused, and the image with it: absolute names, `..`, a member
whose path runs through a symlink (a `dir -> /` link followed by `dir/etc/passwd` would write on
the host), and hard links whose target is outside the layer. Device nodes and fifos are skipped
(the runtime makes the few devices a container gets). Mode, owner and mtime are kept; directory
times are set last, once nothing more is written into them.

Blocking: call it in a thread (`asyncio.to_thread`)."""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import uuid
from pathlib import Path, PurePosixPath

from agent.image.errors import ImageError

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
UNPACKING = ".unpacking"


def _safe(name: str) -> PurePosixPath:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts:
        raise ImageError(f"layer member {name!r} escapes the layer root")
    return PurePosixPath(*[x for x in p.parts if x not in ("", ".")])


def unpack(blob: Path, dest: Path) -> Path:
    """Unpack blob (a tar, possibly gzipped) into dest, which is created complete or not at all.
    If dest appears meanwhile (another unpacker won the race), that one is kept."""
    tmp = dest.with_name(f"{dest.name}.{uuid.uuid4().hex[:12]}{UNPACKING}")
    tmp.mkdir(parents=True)
    try:
        try:
            with tarfile.open(blob, "r:*") as tar:
                dirs: list[tuple[Path, tarfile.TarInfo]] = []
                for m in tar:
                    _extract(tar, m, tmp, dirs)
                for path, m in reversed(dirs):
                    if path.is_dir() and not path.is_symlink():
                        os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)
        except (tarfile.TarError, OSError, EOFError, ValueError) as e:
            raise ImageError(f"cannot unpack layer {blob.name}: {e}") from None
        try:
            tmp.rename(dest)
        except OSError:
            if not dest.is_dir():
                raise ImageError(f"cannot move the unpacked layer to {dest}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _parent(root: Path, rel: PurePosixPath, name: str) -> Path:
    """The directory that will hold rel, made if need be; refused if any part is a symlink."""
    parent = root
    for part in rel.parts[:-1]:
        parent = parent / part
        if parent.is_symlink():
            raise ImageError(f"layer member {name!r} escapes the layer root (through a symlink)")
        if not parent.exists():
            parent.mkdir(mode=0o755)
        elif not parent.is_dir():
            raise ImageError(f"layer member {name!r} is under a file")
    return parent


def _extract(
    tar: tarfile.TarFile, m: tarfile.TarInfo, root: Path, dirs: list[tuple[Path, tarfile.TarInfo]]
) -> None:
    rel = _safe(m.name)
    if not rel.parts:
        return  # "./" itself
    name = rel.name
    parent = _parent(root, rel, m.name)
    if name == OPAQUE:
        os.setxattr(parent, "trusted.overlay.opaque", b"y", follow_symlinks=False)
        return
    if name.startswith(WHITEOUT):
        hidden = name[len(WHITEOUT) :]
        if not hidden or hidden.startswith(WHITEOUT) or hidden in (".", ".."):
            return  # aufs metadata (.wh..wh.plnk, ...), meaningless here
        target = parent / hidden
        _clear(target)
        os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        return
    path = parent / name
    if m.isdir():
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            _clear(path)
        path.mkdir(mode=0o700, exist_ok=True)
        dirs.append((path, m))
    elif m.issym():
        _clear(path)
        os.symlink(m.linkname, path)  # resolved inside the container, after pivot_root
    elif m.islnk():
        rel_target = _safe(m.linkname)
        target = _parent(root, rel_target, m.linkname) / rel_target.name if rel_target.parts else root
        if not (target.is_symlink() or target.exists()) or (target.is_dir() and not target.is_symlink()):
            raise ImageError(f"layer member {m.name!r} links to {m.linkname!r}, which the layer lacks")
        _clear(path)
        os.link(target, path, follow_symlinks=False)
        return  # the inode keeps the metadata of the member that made it
    elif m.isfile():
        _clear(path)
        src = tar.extractfile(m)
        if src is None:
            raise ImageError(f"layer member {m.name!r} has no data")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with src, os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(src, f, 1 << 20)
    else:
        return  # device nodes and fifos
    os.chown(path, m.uid, m.gid, follow_symlinks=False)
    if m.issym():
        try:
            os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)
        except NotImplementedError:
            pass
        return
    os.chmod(path, m.mode & 0o7777)  # after chown, which clears setuid bits
    if not m.isdir():
        os.utime(path, (m.mtime, m.mtime))


def _clear(path: Path) -> None:
    """Make room for a new entry at path (a later member of a tar replaces an earlier one)."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
