"""The embedded DNS resolver every container sees at 127.0.0.11 (Docker's trick, our way).

Why this way: the answers (service VIPs, task IPs) live in the agent's memory, so the server lives
in the agent too. A socket belongs to the network namespace it was *created* in, not to the
thread that later reads it; so a short-lived helper thread setns()es into the container's netns,
creates and binds one UDP and one TCP socket at 127.0.0.11:53, and steps back out. The sockets
are then served from the agent's own asyncio loop. That gives one loop for all containers, no
process per container, and nothing to supervise or kill.

What else we considered: a resolver process per container (`ip netns exec ... dnsd`) costs a
process each and needs its own channel to the agent for updates; forking into the namespace is
unsafe in swarmd, whose gRPC threads make fork() a hazard (grpc/grpc#13998); pyroute2's netns
helpers fork, so they are out too. NAT-ing 127.0.0.11 to one shared agent socket (Docker's
iptables rules) needs per-namespace NAT rules and route_localnet; the socket trick needs nothing.

We answer only names the resolver knows, as the authority, and never forward: a container that
needs outside names gets them from a nameserver of its own (none by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import random
import socket
import struct
import threading
import typing
from typing import Protocol

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from agent.runtime.linux import CLONE_NEWNET, setns
from shoal.errors import FailedPrecondition
from shoal.log import get_logger

log = get_logger("dns")

DEFAULT_ADDRESS = "127.0.0.11"
TTL = 5  # short: tasks come and go, and the resolver's view changes with them
UDP_MIN_SIZE = 512  # RFC 1035; what a client without EDNS can take
UDP_MAX_SIZE = 4096  # cap what an EDNS client may ask for, to avoid IP fragmentation trouble
TCP_MAX_SIZE = 65535
TCP_IDLE_TIMEOUT = 10.0

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


class Resolver(Protocol):
    def lookup(self, name: str) -> list[str] | None:
        """IPv4 addresses for `name` (lower case, no trailing dot), [] for a name known to have
        none, None for a name that does not exist."""
        ...


def resolv_conf() -> str:
    """The /etc/resolv.conf a container gets. ndots:0 so that `web` is asked as is, first."""
    return f"nameserver {DEFAULT_ADDRESS}\noptions ndots:0\n"


# --- answering (pure: bytes in, bytes out) ---------------------------------------------------


def answer(resolver: Resolver, wire: bytes, max_size: int | None) -> bytes | None:
    """The reply to the query `wire`, or None to drop it (unparseable, or not a query).
    `max_size` is the transport's limit: None for UDP (512 or the client's EDNS size), an int
    for TCP. An answer that does not fit is cut to the records that do, with TC set."""
    try:
        query = dns.message.from_wire(wire)
    except Exception:  # dnspython raises a zoo (FormError, ShortHeader, ValueError, ...)
        return None
    if query.flags & dns.flags.QR:
        return None  # never answer an answer: that is how two servers ping-pong forever
    response = dns.message.make_response(query, recursion_available=True, our_payload=UDP_MAX_SIZE)
    response.flags |= dns.flags.AA
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)
    elif len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
    else:
        _fill(resolver, query.question[0], response)
    if max_size is None:
        max_size = UDP_MIN_SIZE
        if query.edns >= 0:
            max_size = min(max(query.payload, UDP_MIN_SIZE), UDP_MAX_SIZE)
    return _render(response, max_size)


def _fill(resolver: Resolver, question: dns.rrset.RRset, response: dns.message.Message) -> None:
    if question.rdclass not in (dns.rdataclass.IN, dns.rdataclass.ANY):
        response.set_rcode(dns.rcode.REFUSED)
        return
    name = question.name.to_text(omit_final_dot=True).lower()
    try:
        addrs = resolver.lookup(name)
        if addrs is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return
        if question.rdtype != dns.rdatatype.A or not addrs:
            return  # the name exists, just not with this type: NOERROR, no answer
        addrs = list(addrs)
        random.shuffle(addrs)  # poor man's round robin for dnsrr and tasks.NAME
        rrset = dns.rrset.from_text_list(question.name, TTL, dns.rdataclass.IN, dns.rdatatype.A, addrs)
    except Exception:
        log.exception("dns_lookup_failed", name=name)
        response.set_rcode(dns.rcode.SERVFAIL)
        return
    response.answer.append(rrset)


def _render(response: dns.message.Message, max_size: int) -> bytes:
    try:
        return response.to_wire(max_size=max_size)
    except dns.exception.TooBig:
        pass
    # Keep as many A records as fit (an old musl ignores TC and uses what it got), set TC.
    response.flags |= dns.flags.TC
    full = response.answer[0] if response.answer else None
    response.answer = []
    if full is None:
        return response.to_wire()
    records = list(full)
    best = response.to_wire()  # no answer at all: always fits
    lo, hi = 0, len(records) - 1  # records[:lo] fits; all of them did not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        part = dns.rrset.RRset(full.name, full.rdclass, full.rdtype)
        part.update_ttl(full.ttl)
        for rd in records[:mid]:
            part.add(rd)
        response.answer = [part]
        try:
            best = response.to_wire(max_size=max_size)
            lo = mid
        except dns.exception.TooBig:
            hi = mid - 1
    return best


# --- sockets inside the namespace ------------------------------------------------------------


def _bring_up_loopback() -> None:
    """Set lo up in the calling thread's netns (a fresh netns has it down, and 127.0.0.11 is
    bindable only once lo is up). ioctl on a socket made here: no netlink, no fork."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, ifreq))[1]
        if not flags & _IFF_UP:
            fcntl.ioctl(s.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def _make_sockets(netns_path: str, address: str, port: int) -> tuple[socket.socket, socket.socket]:
    """Runs in a dedicated thread: setns only changes the calling thread, and if the way back
    fails the thread simply ends, so the agent's other threads never leave the host netns."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(target, CLONE_NEWNET)
        finally:
            os.close(target)
        try:
            _bring_up_loopback()
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    udp.bind((address, port))
                    tcp.bind((address, port))
                    tcp.listen(64)
                    udp.setblocking(False)
                    tcp.setblocking(False)
                except BaseException:
                    tcp.close()
                    raise
            except BaseException:
                udp.close()
                raise
        finally:
            setns(home, CLONE_NEWNET)
    finally:
        os.close(home)
    return udp, tcp


async def _sockets_in_netns(netns_path: str, address: str, port: int) -> tuple[socket.socket, socket.socket]:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[tuple[socket.socket, socket.socket]] = loop.create_future()

    def deliver(result: tuple[socket.socket, socket.socket]) -> None:
        if done.cancelled():  # our caller went away: do not leak the sockets
            for sock in result:
                sock.close()
        else:
            done.set_result(result)

    def fail(error: BaseException) -> None:
        if not done.cancelled():
            done.set_exception(error)

    def work() -> None:
        try:
            result = _make_sockets(netns_path, address, port)
        except BaseException as e:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody to tell
                loop.call_soon_threadsafe(fail, e)
            return
        try:
            loop.call_soon_threadsafe(deliver, result)
        except RuntimeError:
            for sock in result:
                sock.close()

    threading.Thread(target=work, name="dns-setns", daemon=True).start()
    return await done


# --- serving ---------------------------------------------------------------------------------


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, resolver: Resolver, closed: asyncio.Future[None]) -> None:
        self._resolver = resolver
        self._closed = closed
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # 3.11's selector transport does not subclass DatagramTransport, though it is one.
        self._transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        reply = answer(self._resolver, data, None)
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("dns_udp_error", error=str(exc))  # e.g. ICMP unreachable for a gone client

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)


class DnsServer:
    """Answers DNS for one container's network namespace, on UDP and TCP at address:port."""

    def __init__(
        self, netns_path: str, resolver: Resolver, address: str = DEFAULT_ADDRESS, port: int = 53
    ) -> None:
        self.netns_path = netns_path
        self.address = address
        self.port = port
        self._resolver = resolver
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_closed: asyncio.Future[None] | None = None
        self._tcp: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        if self._udp is not None:
            raise FailedPrecondition(f"dns server for {self.netns_path} already started")
        try:
            udp_sock, tcp_sock = await _sockets_in_netns(self.netns_path, self.address, self.port)
        except OSError as e:
            raise FailedPrecondition(
                f"dns: cannot listen on {self.address}:{self.port} in {self.netns_path}: {e}"
            ) from e
        loop = asyncio.get_running_loop()
        try:
            self._udp_closed = loop.create_future()
            closed = self._udp_closed
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self._resolver, closed), sock=udp_sock
            )
            self._udp = transport
            self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp_sock)
        except BaseException:
            udp_sock.close()
            tcp_sock.close()
            await self.close()
            raise
        log.info("dns_started", netns=self.netns_path, address=self.address, port=self.port)

    async def close(self) -> None:
        """Stop serving and release both sockets; the port is free when this returns."""
        if self._tcp is not None:
            self._tcp.close()
            for w in list(self._clients):
                w.close()
            await self._tcp.wait_closed()
            self._tcp = None
        if self._udp is not None:
            self._udp.close()
            if self._udp_closed is not None:
                await self._udp_closed  # the transport closes its socket a loop turn later
            self._udp = None
            log.info("dns_closed", netns=self.netns_path)

    async def __aenter__(self) -> DnsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while True:
                try:
                    async with asyncio.timeout(TCP_IDLE_TIMEOUT):
                        (length,) = struct.unpack("!H", await reader.readexactly(2))
                        wire = await reader.readexactly(length)
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                reply = answer(self._resolver, wire, TCP_MAX_SIZE)
                if reply is None:
                    return  # garbage on a stream: we cannot resynchronise, hang up
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except ConnectionError:
            return
        finally:
            self._clients.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


__all__ = ["DEFAULT_ADDRESS", "DnsServer", "Resolver", "answer", "resolv_conf"]
