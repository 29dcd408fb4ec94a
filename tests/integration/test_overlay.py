"""Issue 4 acceptance, the data plane: real containers on three lab hosts talking over VXLAN
overlay networks, by name (embedded DNS) and through service VIPs (nftables), published ports on
the underlay, and the hosts' FDB/neighbor tables following the live peers. The tests share one lab
and run in the order written."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from shoal.netaddr import mac_for
from swarmlab import net
from swarmlab.testing import running_lab
from tests.integration.cli import Cli, wait_for
from tests.integration.test_containers import image, pid_of

pytestmark = pytest.mark.lab
HOSTS = ("m1", "w1", "w2")
# Devices the agent's data plane makes (agent/network): bridge, vxlan, host veth ends.
DEVICE_PREFIXES = ("shb", "shx", "shv")
WEB = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"


@pytest.fixture(scope="module")
def lab() -> Iterator[Cli]:
    with running_lab(managers=1, workers=2, executor="container") as lab:
        yield Cli(lab)


def sh(pid: int, script: str, check: bool = True, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    """A shell inside a container's namespaces (its own busybox, resolv.conf and routes)."""
    proc = subprocess.run(
        ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "sh", "-c", script],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if check:
        assert proc.returncode == 0, f"{script!r}: {proc.stderr or proc.stdout}"
    return proc


def host_json(cli: Cli, host: str, *cmd: str) -> Any:
    proc = cli.lab.exec(host, *cmd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout or "[]")


def overlay_ip(task: dict[str, Any], network_id: str) -> str:
    (att,) = [a for a in task["networks_attachments"] if a["network"]["id"] == network_id]
    return str(att["addresses"][0].split("/")[0])


def host_of(cli: Cli, task: dict[str, Any]) -> str:
    return cli.hostnames()[task["node_id"]]


def network_id(cli: Cli, name: str) -> str:
    return str(cli.json("network", "inspect", name)["id"])


def client_pid(cli: Cli) -> int:
    (t,) = cli.running("client")
    return pid_of(t)


def fetch(pid: int, url: str = "http://web/") -> str:
    return sh(pid, f"timeout 3 wget -q -O- {url}").stdout.strip()


def test_cross_host_traffic_by_name_and_vip(lab: Cli) -> None:
    lab.run("network", "create", "--driver", "overlay", "app")
    lab.run(
        "service", "create", "--name", "web", "--replicas", "2", "--network", "app",
        "--constraint", "node.role==worker", image(lab), "sh", "-c", WEB,
    )  # fmt: skip
    lab.run(
        "service", "create", "--name", "client", "--network", "app", "--constraint", "node.role==manager",
        image(lab), "sleep", "100000",
    )  # fmt: skip
    app = network_id(lab, "app")
    web = lab.running("web")
    assert {host_of(lab, t) for t in web} == {"w1", "w2"}
    pid = client_pid(lab)
    names = {t["id"][:12] for t in web}

    assert wait_for(lambda: fetch(pid) in names, 20, "http://web/ through the VIP")
    seen = Counter(fetch(pid) for _ in range(20))
    assert set(seen) == names, f"the VIP balances over both replicas: {seen}"

    ips = {overlay_ip(t, app) for t in web}
    out = sh(pid, "nslookup tasks.web").stdout
    assert ips <= set(out.split()), out
    vip = next(v["addr"] for v in lab.json("service", "inspect", "web")["endpoint"]["virtual_ips"])
    assert vip.split("/")[0] in sh(pid, "nslookup web").stdout
    assert sh(pid, "nslookup nothing.here", check=False).returncode != 0
    for ip in ips:  # both web tasks run on other hosts than the client
        sh(pid, f"ping -c 1 -W 2 {ip}")
    # The attachment: the allocated address and the MAC derived from it, MTU = underlay MTU - 50.
    underlay_mtu = int(lab.lab.exec("m1", "cat", "/sys/class/net/eth0/mtu").stdout)
    (me,) = lab.running("client")
    mine = overlay_ip(me, app)
    assert sh(pid, "cat /sys/class/net/eth0/mtu").stdout.strip() == str(underlay_mtu - 50)
    assert sh(pid, "cat /sys/class/net/eth0/address").stdout.strip() == mac_for(mine)
    assert mine in sh(pid, "ip -o -4 addr show eth0").stdout


def test_other_network_is_isolated(lab: Cli) -> None:
    lab.run("network", "create", "--driver", "overlay", "other")
    lab.run(
        "service", "create", "--name", "lone", "--network", "other", "--constraint", "node.hostname==w1",
        image(lab), "sleep", "100000",
    )  # fmt: skip
    (lone,) = lab.running("lone")
    pid = pid_of(lone)
    app = network_id(lab, "app")
    for t in lab.running("web"):
        ip = overlay_ip(t, app)
        assert sh(pid, f"ping -c 1 -W 1 {ip}", check=False).returncode != 0, f"reached {ip} from other"
        assert sh(pid, f"timeout 2 wget -q -O- http://{ip}/", check=False).returncode != 0
    assert sh(pid, "timeout 2 wget -q -O- http://web/", check=False).returncode != 0
    assert sh(pid, "nslookup web", check=False).returncode != 0, "app's names are not visible on other"
    lab.run("service", "rm", "lone")


def _expected_peers(lab: Cli, net_id: str) -> dict[str, set[tuple[str, str, str]]]:
    """host -> {(mac, overlay ip, underlay dst)} of the endpoints on *other* hosts."""
    names = lab.hostnames()
    addr = {n["id"]: n["status"]["addr"] for n in lab.nodes()}
    live = [
        t
        for t in lab.tasks()
        if t["status"]["state"] in ("ASSIGNED", "ACCEPTED", "PREPARING", "READY", "STARTING", "RUNNING")
        and any(a["network"]["id"] == net_id for a in t.get("networks_attachments", []))
    ]
    out: dict[str, set[tuple[str, str, str]]] = {}
    for host in HOSTS:
        out[host] = {
            (mac_for(overlay_ip(t, net_id)), overlay_ip(t, net_id), addr[t["node_id"]])
            for t in live
            if names[t["node_id"]] != host
        }
    return out


def _vxlan(lab: Cli, host: str, vni: str) -> str | None:
    links = host_json(lab, host, "ip", "-j", "-d", "link", "show", "type", "vxlan")
    for link in links:
        info = link.get("linkinfo", {}).get("info_data", {})
        if str(info.get("id")) == vni:
            return str(link["ifname"])
    return None


def _actual_peers(lab: Cli, host: str, vni: str) -> set[tuple[str, str, str]] | None:
    dev = _vxlan(lab, host, vni)
    if dev is None:
        return None
    fdb = host_json(lab, host, "bridge", "-j", "fdb", "show", "dev", dev)
    dst = {e["mac"]: e["dst"] for e in fdb if e.get("dst") and e["mac"] != "00:00:00:00:00:00"}
    neigh = host_json(lab, host, "ip", "-j", "neigh", "show", "dev", dev)
    ip_of = {n["lladdr"]: n["dst"] for n in neigh if "lladdr" in n}
    assert len(fdb) == len({(e["mac"], e.get("dst")) for e in fdb}), f"duplicate fdb entries on {host}"
    assert set(dst) == set(ip_of), f"{host}: fdb {dst} and neighbors {ip_of} disagree"
    return {(mac, ip_of[mac], dst[mac]) for mac in dst}


def _tables_match(lab: Cli, net_id: str, vni: str) -> bool:
    want = _expected_peers(lab, net_id)
    for host in HOSTS:
        have = _actual_peers(lab, host, vni)
        if have is None:
            continue  # no task of this network on the host: no device, nothing to compare
        if have != want[host]:
            return False
    return True


def test_churn_keeps_fdb_and_neighbors_equal_to_the_live_peers(lab: Cli) -> None:
    app = network_id(lab, "app")
    vni = lab.json("network", "inspect", "app")["driver_state"]["options"]["vni"]
    pid = client_pid(lab)
    wait_for(lambda: _tables_match(lab, app, vni), 20, "fdb/neighbors equal to the peers")
    for replicas in (6, 1):
        lab.run("service", "scale", "--detach", f"web={replicas}")
        answers = 0

        def scaled(r: int = replicas) -> bool:
            nonlocal answers
            answers += bool(fetch(pid))  # the VIP keeps answering while the service scales
            return len(lab.running("web")) == r and _tables_match(lab, app, vni)

        wait_for(scaled, 60, f"{replicas} web tasks and fdb/neighbors equal to the peers")
        assert answers > 0
        assert fetch(pid)
    lab.run("service", "scale", "web=2")
    # A rolling update replaces every task: the VIP follows, to the new ones only.
    lab.run("service", "update", "--force", "--update-parallelism", "2", "web")
    new = {t["id"][:12] for t in lab.running("web")}
    wait_for(lambda: _tables_match(lab, app, vni), 20, "fdb/neighbors after the update")
    assert wait_for(lambda: {fetch(pid) for _ in range(12)} == new, 20, "the VIP on the updated tasks")


def _devices(lab: Cli, host: str) -> list[str]:
    links = host_json(lab, host, "ip", "-j", "link", "show")
    return [str(link["ifname"]) for link in links if str(link["ifname"]).startswith(DEVICE_PREFIXES)]


def _devices_match_tasks(lab: Cli, host: str) -> bool:
    """One veth per attachment of the host's tasks (none stopping), one bridge and vxlan per network."""
    names = lab.hostnames()
    live = [
        t
        for t in lab.tasks()
        if names[t["node_id"]] == host
        and t["desired_state"] == "RUNNING"
        and t["status"]["state"] in ("ACCEPTED", "PREPARING", "READY", "STARTING", "RUNNING")
    ]
    atts = [
        (t["id"], a["network"]["driver_state"]["options"]["vni"])
        for t in live
        for a in t.get("networks_attachments", [])
    ]
    want = {f"shb{vni}" for _, vni in atts} | {f"shx{vni}" for _, vni in atts}
    have = _devices(lab, host)
    veths = [d for d in have if d.startswith("shv")]
    return (
        len(have) == len(set(have))
        and {d for d in have if not d.startswith("shv")} == want
        and len(veths) == len(atts)
    )


def test_agent_restart_keeps_containers_reachable(lab: Cli) -> None:
    app = network_id(lab, "app")
    vni = lab.json("network", "inspect", "app")["driver_state"]["options"]["vni"]
    pid = client_pid(lab)
    host = host_of(lab, lab.running("web")[0])  # a worker (w1 or w2) with web tasks
    wait_for(lambda: _devices_match_tasks(lab, host), 30, f"{host}'s devices settled before the restart")
    before = _devices(lab, host)
    on_host = [t for t in lab.running("web") if host_of(lab, t) == host]
    lab.lab.kill(host)
    lab.lab.start(host)
    wait_for(lambda: {n["status"]["state"] for n in lab.nodes()} == {"READY"}, 30, f"{host} back")
    for t in on_host:
        sh(pid, f"ping -c 1 -W 2 {overlay_ip(t, app)}")
    wait_for(lambda: _tables_match(lab, app, vni), 20, "fdb/neighbors after the restart")
    assert _devices_match_tasks(lab, host)
    after = _devices(lab, host)
    assert sorted(after) == sorted(before), (before, after)
    assert {t["id"] for t in lab.running("web") if host_of(lab, t) == host} == {t["id"] for t in on_host}
    assert wait_for(lambda: fetch(pid), 20, "the VIP after the restart")


def test_published_port_on_every_node_running_a_task(lab: Cli) -> None:
    lab.run(
        "service", "create", "--name", "pub", "--replicas", "2", "--network", "app", "--publish", "8080:80",
        image(lab), "sh", "-c", WEB,
    )  # fmt: skip
    tasks = lab.running("pub")
    addr = {n["id"]: n["status"]["addr"] for n in lab.nodes()}
    underlay = net.NETNS_DIR / net.underlay_ns(lab.lab.name)
    for t in tasks:
        url = f"http://{addr[t['node_id']]}:8080/"

        def answers(url: str = url) -> str:
            proc = subprocess.run(
                ["nsenter", f"--net={underlay}", "timeout", "3", "busybox", "wget", "-q", "-O-", url],
                capture_output=True, text=True, timeout=10,
            )  # fmt: skip
            return proc.stdout.strip()

        assert wait_for(answers, 20, f"{url} from the underlay") == t["id"][:12]
    lab.run("service", "rm", "pub")


def test_removal_leaves_no_devices_or_rules(lab: Cli) -> None:
    for svc in ("web", "client"):
        lab.run("service", "rm", svc)
    wait_for(lambda: not lab.tasks(), 60, "every task gone")
    for name in ("app", "other"):
        lab.run("network", "rm", name)

    def clean() -> bool:
        for host in HOSTS:
            if _devices(lab, host):
                return False
            tables = lab.lab.exec(host, "nft", "list", "tables").stdout
            if "shoal" in tables:
                return False
        return True

    wait_for(clean, 30, "no bridge, vxlan, veth or nftables table left on any host")
