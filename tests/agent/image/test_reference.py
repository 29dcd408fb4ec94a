"""Image references, parsed as Docker does (no registry needed)."""

from __future__ import annotations

import pytest

import agent.image
from agent.exec import ExecError, TemporaryError
from agent.image import ImageError, parse
from agent.image.registry import parse_challenge

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("ref", "host", "repo", "tag", "digest"),
    [
        ("busybox", "docker.io", "library/busybox", "latest", ""),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", ""),
        ("team/app", "docker.io", "team/app", "latest", ""),
        ("docker.io/busybox", "docker.io", "library/busybox", "latest", ""),
        ("index.docker.io/library/busybox:1", "docker.io", "library/busybox", "1", ""),
        ("ghcr.io/org/app:v1.2_3-rc", "ghcr.io", "org/app", "v1.2_3-rc", ""),
        ("localhost/app", "localhost", "app", "latest", ""),
        ("localhost:5000/a/b/c:t", "localhost:5000", "a/b/c", "t", ""),
        ("10.0.0.1:5000/team/app:v1", "10.0.0.1:5000", "team/app", "v1", ""),
        ("127.0.0.1:5000/app@" + D, "127.0.0.1:5000", "app", "", D),
        ("127.0.0.1:5000/app:v1@" + D, "127.0.0.1:5000", "app", "v1", D),
        ("[::1]:5000/app", "[::1]:5000", "app", "latest", ""),
        ("my-registry.example.com/a__b/c.d-e", "my-registry.example.com", "a__b/c.d-e", "latest", ""),
    ],
)
def test_references(ref: str, host: str, repo: str, tag: str, digest: str) -> None:
    r = parse(ref)
    assert (r.host, r.repo, r.tag, r.digest) == (host, repo, tag, digest)
    assert parse(str(r)) == r  # the normalised form reads back the same


def test_normalised_form_and_api_host() -> None:
    assert str(parse("busybox")) == "docker.io/library/busybox:latest"
    assert parse("busybox").api_host == "registry-1.docker.io"
    assert str(parse("127.0.0.1:5000/x@" + D)) == "127.0.0.1:5000/x@" + D
    assert str(parse("127.0.0.1:5000/x:latest").pinned(D)) == "127.0.0.1:5000/x:latest@" + D
    assert parse("x:1@" + D).manifest_ref == D and parse("x:1").manifest_ref == "1"


@pytest.mark.parametrize(
    ("ref", "scheme"),
    [
        ("127.0.0.1:5000/x", "http"),
        ("10.1.2.3/x", "http"),
        ("localhost/x", "http"),
        ("registry.local:5000/x", "http"),
        ("[::1]:5000/x", "http"),
        ("ghcr.io/x/y", "https"),
        ("busybox", "https"),
    ],
)
def test_plain_http_only_for_local_registries(ref: str, scheme: str) -> None:
    assert parse(ref).scheme == scheme


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("", "empty"),
        (" busybox", "spaces"),
        ("a b", "spaces"),
        ("Busybox", "invalid repository name"),
        ("app:bad tag", "spaces"),
        ("app:-tag", "invalid tag"),
        ("app:" + "t" * 129, "invalid tag"),
        ("app@sha256:123", "digest"),
        ("app@md5:" + "a" * 32, "digest"),
        ("reg.io/", "invalid repository name"),
        ("reg.io//x", "invalid repository name"),
        ("reg.io/x/", "invalid repository name"),
        ("a..b/x", "invalid registry host"),
        ("bad_host.io/x", "invalid registry host"),
        ("host:port/x", "invalid registry host"),
        ("reg.io/x--", "invalid repository name"),
        ("reg.io/" + "a" * 300, "longer than"),
    ],
)
def test_bad_references_are_refused_clearly(ref: str, why: str) -> None:
    with pytest.raises(ImageError, match=rf"^invalid image reference .*{why}"):
        parse(ref)


def test_bearer_challenge() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/busybox:pull",
    }
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})
    assert parse_challenge("") == ("", {})


def test_exports() -> None:
    for name in agent.image.__all__:
        assert hasattr(agent.image, name), name
    # Every image failure rejects the task (the restart delay is the backoff), none is "temporary".
    assert issubclass(agent.image.ImageError, ExecError)
    assert issubclass(agent.image.RegistryUnreachable, agent.image.ImageError)
    assert not issubclass(agent.image.RegistryUnreachable, TemporaryError)
