"""A real OCI registry for the lab and the tests: Debian's docker-registry, and images built
from Debian's busybox-static with umoci and pushed with skopeo (no Docker, no internet).

    busybox:latest   busybox-static and its applets, /etc/passwd, /tmp; Cmd ["sh"], Env PATH
    busybox:2        the same plus /etc/version in a second layer (another digest, for updates)
    whiteout:latest  busybox plus a layer that makes /etc/deleteme, and a top layer deleting it

The images are built once into an OCI layout under a work directory (by default a cache shared
by the lab and the tests, under a file lock, and renamed into place when complete), so only the
first run pays for umoci. The layout's tags are the image names with `_` for `:`.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REGISTRY = "/usr/bin/docker-registry"
BUSYBOX = Path("/bin/busybox")
CACHE = Path("/var/cache/shoal/images")
LAYOUT = "oci-v2"  # bump when the images change: a cache of older images is then rebuilt
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IMAGES = ("busybox:latest", "busybox:2", "whiteout:latest")
TIMEOUT = 300.0


class RegistryError(Exception):
    pass


def _run(*cmd: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    except FileNotFoundError:
        raise RegistryError(f"{cmd[0]} is missing (see scripts/apt-packages.txt)") from None
    except subprocess.TimeoutExpired:
        raise RegistryError(f"{' '.join(cmd[:3])} took more than {TIMEOUT:.0f}s") from None
    if proc.returncode != 0:
        raise RegistryError(f"{' '.join(cmd[:3])} failed: {proc.stderr.strip()[-500:]}")


# The registry


def write_config(data_dir: Path, addr: str) -> Path:
    """docker-registry's config: filesystem storage under data_dir, HTTP on addr, no auth (the
    config Debian ships listens on every interface and wants htpasswd users)."""
    config = data_dir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {data_dir / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {addr}\n"
    )
    return config


def start_registry(
    data_dir: Path, addr: str, netns: str | None = None, timeout: float = 20
) -> subprocess.Popen[bytes]:
    """docker-registry serving data_dir on addr (ip:port), inside netns if given; returns once
    /v2/ answers. Stop it with stop_registry."""
    if not Path(REGISTRY).exists():
        raise RegistryError(f"{REGISTRY} is missing (Debian package docker-registry)")
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [REGISTRY, "serve", str(write_config(data_dir, addr))]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]  # ip execs the registry: same pid
    with (data_dir / "registry.log").open("ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RegistryError(f"docker-registry exited: {(data_dir / 'registry.log').read_text()[-500:]}")
        if _answers(addr, netns):
            return proc
        if time.monotonic() > deadline:
            stop_registry(proc)
            raise RegistryError(f"docker-registry did not answer on {addr}")
        time.sleep(0.1)


def _answers(addr: str, netns: str | None) -> bool:
    if netns:
        # Our own interpreter as the probe: nothing to install (wget may be missing).
        code = f"import urllib.request; urllib.request.urlopen('http://{addr}/v2/', timeout=1)"
        probe = ["ip", "netns", "exec", netns, sys.executable, "-c", code]
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    try:
        with urllib.request.urlopen(f"http://{addr}/v2/", timeout=1):
            return True
    except OSError:
        return False


def stop_registry(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# The images


def busybox_tree(rootfs: Path) -> None:
    """A busybox root filesystem from Debian's busybox-static: the applets, passwd, group."""
    for d in ("bin", "etc", "tmp", "root", "proc", "sys", "dev"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for a in applets:
        link = rootfs / "bin" / a
        if a != "busybox" and not link.exists():
            link.symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    )
    (rootfs / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (rootfs / "tmp").chmod(0o1777)


def _layer(layout: Path, src: str, dst: str, work: Path, change: Callable[[Path], object]) -> None:
    """Image dst = image src plus one layer holding what change does to its rootfs (a file that
    change deletes becomes a whiteout)."""
    bundle = work / f"bundle-{dst}"
    shutil.rmtree(bundle, ignore_errors=True)
    _run("umoci", "unpack", "--image", f"{layout}:{src}", str(bundle))
    change(bundle / "rootfs")
    _run("umoci", "repack", "--image", f"{layout}:{dst}", str(bundle))
    shutil.rmtree(bundle, ignore_errors=True)


def _tag(image: str) -> str:
    return image.replace(":", "_")


def _build(layout: Path, work: Path) -> None:
    if not BUSYBOX.exists():
        raise RegistryError(f"{BUSYBOX} is missing (Debian package busybox-static)")
    _run("umoci", "init", "--layout", str(layout))
    _run("umoci", "new", "--image", f"{layout}:base")
    busybox = _tag("busybox:latest")
    _layer(layout, "base", busybox, work, busybox_tree)
    _run("umoci", "config", "--image", f"{layout}:{busybox}", "--config.cmd", "sh", "--config.env", PATH)
    _layer(layout, busybox, _tag("busybox:2"), work, lambda r: (r / "etc" / "version").write_text("2\n"))
    _layer(layout, busybox, "wo1", work, lambda r: (r / "etc" / "deleteme").write_text("gone soon\n"))
    _layer(layout, "wo1", _tag("whiteout:latest"), work, lambda r: (r / "etc" / "deleteme").unlink())
    _run("umoci", "rm", "--image", f"{layout}:base")
    _run("umoci", "rm", "--image", f"{layout}:wo1")


@contextmanager
def _locked(work: Path) -> Iterator[None]:
    work.mkdir(parents=True, exist_ok=True)
    with (work / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_images(work: Path = CACHE) -> Path:
    """The OCI layout with every image of IMAGES (built once, then cached in work)."""
    layout = work / LAYOUT
    if (layout / "index.json").exists():
        return layout
    with _locked(work):
        if (layout / "index.json").exists():  # another process built it meanwhile
            return layout
        tmp = work / f".build-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            _build(tmp / "layout", tmp)
            (tmp / "layout").rename(layout)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return layout


def build_busybox_image(work: Path = CACHE) -> Path:
    """An OCI layout whose tag busybox_latest is busybox (busybox_2: the same plus a layer)."""
    return build_images(work)


def build_whiteout_image(work: Path = CACHE) -> Path:
    """An OCI layout whose tag whiteout_latest is busybox plus /etc/deleteme, then a layer that
    deletes it (a `.wh.deleteme` whiteout)."""
    return build_images(work)


def push(layout: Path, tag_ref: str, registry: str, netns: str | None = None) -> None:
    """Push the layout's image for tag_ref (`name:tag`) to registry (ip:port, plain HTTP)."""
    name, _, tag = tag_ref.partition(":")
    target = f"{name}:{tag or 'latest'}"
    prefix = ["ip", "netns", "exec", netns] if netns else []
    _run(*prefix, "skopeo", "copy", "--insecure-policy", "--dest-tls-verify=false", "-q",
         f"oci:{layout}:{_tag(target)}", f"docker://{registry}/{target}")  # fmt: skip


def seed(registry: str, work: Path = CACHE, netns: str | None = None) -> None:
    """Build (once) and push every image of IMAGES to registry (ip:port), from netns if given."""
    layout = build_images(work)
    for image in IMAGES:
        push(layout, image, registry, netns=netns)
