"""The embedded DNS server: pure answering logic (no root), then real sockets in a throwaway
netns (lab). All queries go to 127.0.0.11 from inside the namespace the test created."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from typing import TypeVar

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from agent.network.dns import DnsServer, answer, resolv_conf
from agent.runtime.linux import CLONE_NEWNET, setns
from shoal.errors import FailedPrecondition

T = TypeVar("T")
ADDR = "127.0.0.11"
BIG = [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(60)]
RECORDS = {
    "web": ["10.0.0.2"],
    "tasks.web": ["10.0.0.5", "10.0.0.6"],
    "tasks.big": BIG,
    "empty": [],
}


class DictResolver:
    def __init__(self, records: dict[str, list[str]]) -> None:
        self.records = records
        self.asked: list[str] = []

    def lookup(self, name: str) -> list[str] | None:
        self.asked.append(name)
        return self.records.get(name)


def _ask(name: str, rdtype: str = "A", **kw: object) -> dns.message.Message:
    wire = answer(DictResolver(RECORDS), dns.message.make_query(name, rdtype, **kw).to_wire(), None)  # type: ignore[arg-type]
    assert wire is not None
    return dns.message.from_wire(wire, raise_on_truncation=False)


def _addrs(msg: dns.message.Message) -> list[str]:
    return [rd.address for rrset in msg.answer for rd in rrset]


# --- answering logic, no root ----------------------------------------------------------------


def test_answer_flags_and_records() -> None:
    resolver = DictResolver(RECORDS)
    wire = answer(resolver, dns.message.make_query("Tasks.WEB.", "A").to_wire(), None)
    assert wire is not None
    msg = dns.message.from_wire(wire)
    assert resolver.asked == ["tasks.web"]
    assert msg.rcode() == dns.rcode.NOERROR
    assert msg.flags & dns.flags.QR and msg.flags & dns.flags.RA and msg.flags & dns.flags.AA
    assert sorted(_addrs(msg)) == ["10.0.0.5", "10.0.0.6"]
    assert all(rrset.ttl <= 5 for rrset in msg.answer)


def test_answer_known_name_other_type_and_unknown() -> None:
    for rdtype in ("AAAA", "MX", "TXT"):
        msg = _ask("web", rdtype)
        assert msg.rcode() == dns.rcode.NOERROR and msg.answer == []
    assert _ask("empty").rcode() == dns.rcode.NOERROR and _ask("empty").answer == []
    assert _ask("nope").rcode() == dns.rcode.NXDOMAIN
    assert _ask("nope", "AAAA").rcode() == dns.rcode.NXDOMAIN


def test_answer_truncates_to_what_fits() -> None:
    msg = _ask("tasks.big")
    assert msg.flags & dns.flags.TC
    assert 0 < len(_addrs(msg)) < 60  # as many as fit, for clients that ignore TC
    assert len(msg.to_wire()) <= 512
    edns = _ask("tasks.big", use_edns=0, payload=1232)
    assert not edns.flags & dns.flags.TC and len(_addrs(edns)) == 60
    wire = answer(DictResolver(RECORDS), dns.message.make_query("tasks.big", "A").to_wire(), 65535)
    assert wire is not None and len(_addrs(dns.message.from_wire(wire))) == 60


def test_answer_drops_garbage_and_responses() -> None:
    resolver = DictResolver(RECORDS)
    for junk in (b"", b"\x00", b"\x12\x34garbage", os.urandom(300)):
        answer(resolver, junk, None)  # must not raise; a reply, if any, is well-formed
    query = dns.message.make_query("web", "A")
    response = dns.message.make_response(query)
    assert answer(resolver, response.to_wire(), None) is None


def test_answer_servfail_when_resolver_breaks() -> None:
    class Broken:
        def lookup(self, name: str) -> list[str] | None:
            raise RuntimeError("boom")

    wire = answer(Broken(), dns.message.make_query("web", "A").to_wire(), None)
    assert wire is not None and dns.message.from_wire(wire).rcode() == dns.rcode.SERVFAIL


def test_resolv_conf() -> None:
    assert resolv_conf() == "nameserver 127.0.0.11\noptions ndots:0\n"


async def test_start_on_missing_netns_fails_cleanly() -> None:
    server = DnsServer("/nonexistent/netns", DictResolver(RECORDS))
    with pytest.raises(FailedPrecondition):
        await server.start()
    await server.close()


# --- real sockets in a throwaway netns (root) ------------------------------------------------


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2")
    name = f"shoal-dnstest-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=10)


async def _in_netns(name: str, fn: Callable[[], T]) -> T:
    """Run fn in a fresh thread that has entered the netns; the thread ends afterwards, so no
    pooled thread is ever left inside the namespace."""

    def work() -> T:
        fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            setns(fd, CLONE_NEWNET)
        finally:
            os.close(fd)
        return fn()

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, work)
    finally:
        pool.shutdown(wait=False)


async def _udp(ns: str, name: str, rdtype: str = "A") -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    return await _in_netns(ns, lambda: dns.query.udp(q, ADDR, timeout=2))


async def _tcp(ns: str, name: str, rdtype: str = "A") -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    return await _in_netns(ns, lambda: dns.query.tcp(q, ADDR, timeout=2))


@pytest.mark.lab
async def test_serves_names_in_netns(netns: str) -> None:
    async with DnsServer(f"/run/netns/{netns}", DictResolver(RECORDS)):
        web = await _udp(netns, "web")
        assert web.rcode() == dns.rcode.NOERROR and _addrs(web) == ["10.0.0.2"]
        assert web.flags & dns.flags.RA and web.flags & dns.flags.AA
        tasks = await _udp(netns, "tasks.web")
        assert sorted(_addrs(tasks)) == ["10.0.0.5", "10.0.0.6"]
        assert _addrs(await _udp(netns, "WEB.")) == ["10.0.0.2"]
        assert sorted(_addrs(await _tcp(netns, "Tasks.Web"))) == ["10.0.0.5", "10.0.0.6"]
        aaaa = await _udp(netns, "web", "AAAA")
        assert aaaa.rcode() == dns.rcode.NOERROR and aaaa.answer == []
        assert (await _udp(netns, "nope")).rcode() == dns.rcode.NXDOMAIN


@pytest.mark.lab
async def test_big_answer_truncated_on_udp_full_on_tcp(netns: str) -> None:
    async with DnsServer(f"/run/netns/{netns}", DictResolver(RECORDS)):
        udp = await _udp(netns, "tasks.big")
        assert udp.flags & dns.flags.TC and len(_addrs(udp)) < 60
        tcp = await _tcp(netns, "tasks.big")
        assert not tcp.flags & dns.flags.TC and sorted(_addrs(tcp)) == sorted(BIG)


@pytest.mark.lab
async def test_garbage_does_not_kill_server(netns: str) -> None:
    def send_junk() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for junk in (b"\x00", b"\xff" * 40, os.urandom(600)):
                s.sendto(junk, (ADDR, 53))
        with socket.create_connection((ADDR, 53), timeout=2) as t:
            t.sendall(b"\x00\x05hello")  # a framed non-DNS message: the server hangs up
            assert t.recv(10) == b""

    async with DnsServer(f"/run/netns/{netns}", DictResolver(RECORDS)):
        await _in_netns(netns, send_junk)
        assert _addrs(await _udp(netns, "web")) == ["10.0.0.2"]
        assert _addrs(await _tcp(netns, "web")) == ["10.0.0.2"]


@pytest.mark.lab
async def test_close_frees_the_port(netns: str) -> None:
    first = DnsServer(f"/run/netns/{netns}", DictResolver(RECORDS))
    await first.start()
    try:
        with pytest.raises(FailedPrecondition):  # the port is taken while it runs
            await DnsServer(f"/run/netns/{netns}", DictResolver(RECORDS)).start()
        await _tcp(netns, "web")  # leave a finished TCP connection behind
    finally:
        await first.close()
    async with DnsServer(f"/run/netns/{netns}", DictResolver({"web": ["10.9.9.9"]})):
        assert _addrs(await _udp(netns, "web")) == ["10.9.9.9"]
        assert _addrs(await _tcp(netns, "web")) == ["10.9.9.9"]


@pytest.mark.lab
async def test_busybox_nslookup(netns: str) -> None:
    busybox = shutil.which("busybox") or ("/bin/busybox" if os.path.exists("/bin/busybox") else None)
    if busybox is None:
        pytest.skip("busybox is not installed")
    async with DnsServer(f"/run/netns/{netns}", DictResolver(RECORDS)):
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", netns, busybox, "nslookup", "web", ADDR,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            async with asyncio.timeout(10):
                out, _ = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert "10.0.0.2" in out.decode(), out.decode()
