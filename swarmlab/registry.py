"""A real OCI registry for the lab and the tests: Debian's docker-registry, and images built
from Debian's busybox-static with umoci and pushed with skopeo (no Docker, no internet).

    busybox:latest   busybox-static and its applets, Cmd ["sh"]
    busybox:2        the same files in a second layer (a different digest, for updates)
    whiteout:latest  busybox plus a layer that makes /etc/deleteme, and a top layer deleting it
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REGISTRY = "/usr/bin/docker-registry"
BUSYBOX = Path("/bin/busybox")
CACHE = Path("/var/cache/shoal/images")


class RegistryError(Exception):
    pass


def _run(*cmd: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RegistryError(f"{' '.join(cmd[:3])} failed: {proc.stderr.strip()[-500:]}")


def start_registry(
    data_dir: Path, addr: str, netns: str | None = None, timeout: float = 20
) -> subprocess.Popen[bytes]:
    """docker-registry serving data_dir on addr (host:port), inside netns if given."""
    if not Path(REGISTRY).exists():
        raise RegistryError(f"{REGISTRY} is missing (Debian package docker-registry)")
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {data_dir / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {addr}\n"
    )
    cmd = [REGISTRY, "serve", str(config)]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    log = (data_dir / "registry.log").open("ab")
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
        return subprocess.run(probe, capture_output=True).returncode == 0
    try:
        with urllib.request.urlopen(f"http://{addr}/v2/", timeout=1):
            return True
    except OSError:
        return False


def stop_registry(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _busybox_tree(rootfs: Path) -> None:
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
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"
    )
    (rootfs / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (rootfs / "tmp").chmod(0o1777)


def _layer(layout: Path, src_tag: str, dst_tag: str, work: Path, change: object) -> None:
    bundle = work / f"bundle-{dst_tag}"
    shutil.rmtree(bundle, ignore_errors=True)
    _run("umoci", "unpack", "--image", f"{layout}:{src_tag}", str(bundle))
    change(bundle / "rootfs")  # type: ignore[operator]
    _run("umoci", "repack", "--image", f"{layout}:{dst_tag}", str(bundle))
    shutil.rmtree(bundle, ignore_errors=True)


def build_images(work: Path) -> Path:
    """An OCI layout with busybox:latest, busybox:2 and whiteout:latest (cached in work)."""
    layout = work / "layout"
    if (work / ".done").exists():
        return layout
    if not BUSYBOX.exists():
        raise RegistryError(f"{BUSYBOX} is missing (Debian package busybox-static)")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    _run("umoci", "init", "--layout", str(layout))
    _run("umoci", "new", "--image", f"{layout}:base")
    _layer(layout, "base", "busybox", work, _busybox_tree)
    _run("umoci", "config", "--image", f"{layout}:busybox", "--config.cmd", "sh",
         "--config.env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")  # fmt: skip
    _layer(layout, "busybox", "busybox2", work, lambda r: (r / "etc" / "version").write_text("2\n"))
    _layer(layout, "busybox", "wo1", work, lambda r: (r / "etc" / "deleteme").write_text("gone soon\n"))
    _layer(layout, "wo1", "whiteout", work, lambda r: (r / "etc" / "deleteme").unlink())
    (work / ".done").touch()
    return layout


IMAGES = (("busybox", "busybox:latest"), ("busybox2", "busybox:2"), ("whiteout", "whiteout:latest"))


def seed(registry: str, work: Path = CACHE, netns: str | None = None) -> None:
    """Build (once) and push the lab's images to registry (host:port), from netns if given."""
    layout = build_images(work)
    prefix = ["ip", "netns", "exec", netns] if netns else []
    for tag, target in IMAGES:
        _run(*prefix, "skopeo", "copy", "--insecure-policy", "--dest-tls-verify=false", "-q",
             f"oci:{layout}:{tag}", f"docker://{registry}/{target}")  # fmt: skip
