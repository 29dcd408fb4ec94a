"""Unpacking a layer tarball into a directory usable as an overlayfs lower layer.

Whiteouts become what overlayfs understands: `.wh.NAME` → a 0:0 character device NAME;
`.wh..wh..opq` → the `trusted.overlay.opaque=y` xattr on its directory. Members that would land
outside the layer (absolute paths, `..`, hard links out) are refused: the image is rejected."""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path, PurePosixPath

from agent.image.errors import ImageError

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


def _safe(name: str) -> PurePosixPath:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts:
        raise ImageError(f"layer member {name!r} escapes the layer root")
    return PurePosixPath(*[x for x in p.parts if x not in ("", ".")])


def unpack(blob: Path, dest: Path) -> None:
    """blob is a tar, possibly gzipped. dest must not exist; it is created complete or not at all."""
    tmp = dest.with_name(dest.name + f".{os.getpid()}.unpack")
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(blob, "r:*") as tar:
            for m in tar:
                _extract(tar, m, tmp)
        tmp.rename(dest)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ImageError(f"cannot unpack layer {blob.name}: {e}") from None
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


def _extract(tar: tarfile.TarFile, m: tarfile.TarInfo, root: Path) -> None:
    rel = _safe(m.name)
    if not rel.parts:
        return
    name = rel.name
    parent = root.joinpath(*rel.parts[:-1])
    if name == OPAQUE:
        parent.mkdir(parents=True, exist_ok=True)
        os.setxattr(parent, "trusted.overlay.opaque", b"y")
        return
    if name.startswith(WHITEOUT):
        parent.mkdir(parents=True, exist_ok=True)
        target = parent / name[len(WHITEOUT) :]
        _clear(target)
        os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        return
    path = root.joinpath(*rel.parts)
    parent.mkdir(parents=True, exist_ok=True)
    if m.isdir():
        if path.exists() and not path.is_dir():
            _clear(path)
        path.mkdir(exist_ok=True)
    elif m.issym():
        _clear(path)
        os.symlink(m.linkname, path)  # resolved inside the container, after pivot_root
    elif m.islnk():
        target = root.joinpath(*_safe(m.linkname).parts)
        _clear(path)
        os.link(target, path)
    elif m.isfile():
        _clear(path)
        src = tar.extractfile(m)
        assert src is not None
        with src, open(path, "wb") as f:
            while chunk := src.read(1 << 20):
                f.write(chunk)
    else:
        return  # device nodes and fifos: the runtime makes the devices a container gets
    os.lchown(path, m.uid, m.gid)
    if not m.issym():
        os.chmod(path, m.mode & 0o7777)
        os.utime(path, (m.mtime, m.mtime))


def _clear(path: Path) -> None:
    if path.is_symlink() or path.is_file() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        import shutil

        shutil.rmtree(path)
