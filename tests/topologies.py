"""Redis Cluster and Sentinel set-ups for fault tests: real servers on loopback, stopped by pid.

Both use an ACL user with a password that needs percent-encoding, and turn the
default user off, so a test on them also proves that credentials in REDIS_URL
reach every node. Use them as context managers (or through a fixture that
enters one): leaving the block stops every process they started, also when the
test failed.

    with ClusterTopology.started(tmp_path) as cluster:      # 3 primaries + 3 replicas
        cluster.url, cluster.primary_of_key(key), cluster.kill(node), cluster.restart(node)
    with SentinelTopology.started(tmp_path) as sentinels:   # primary + replica + 3 Sentinels
        sentinels.url, sentinels.current_primary(), sentinels.failover(), sentinels.kill(node)
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import redis
from redis.crc import key_slot

from tests.redis_servers import RedisServer

T = TypeVar("T")

USERNAME = "slotlock"
PASSWORD = "p@ss:w/rd%"  # every character that needs escaping in a URL's userinfo
SENTINEL_PASSWORD = "sentinel-secret"
MASTER_NAME = "slotlock-primary"
CLUSTER_NODE_TIMEOUT_MS = 1000
_WAIT_S = 20.0


def wait_for(condition: Callable[[], T | None], what: str, timeout_s: float = _WAIT_S) -> T:
    """Poll `condition` until it returns a value other than None/False; fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            value = condition()
            if value:
                return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def free_port_pair() -> int:
    """A free port P whose cluster bus port P + 10000 is free too."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port < 55535 and _free(port + 10000):
            return port
    raise RuntimeError("no free port pair")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Server(RedisServer):
    """A RedisServer whose start-up pings close their connections (no unclosed sockets)."""

    def wait_until_up(self, timeout_s: float = 10.0) -> None:
        """Block until PING answers, or fail."""
        wait_for(self._pong, f"redis-server on port {self.port} to answer", timeout_s)

    def _pong(self) -> bool:
        with self.client() as client:
            return bool(client.ping())


class Node(Server):
    """A redis-server that admits only the ACL user USERNAME."""

    username: str | None = USERNAME
    password: str | None = PASSWORD

    @classmethod
    def server_args(cls) -> list[str]:
        """The ACL user (and `default` off), replication auth, and quick replication."""
        return [
            "--user", "default", "off",
            "--user", USERNAME, "on", f">{PASSWORD}", "~*", "&*", "+@all",
            "--masteruser", USERNAME,
            "--masterauth", PASSWORD,
            "--repl-diskless-sync", "yes",
            "--repl-diskless-sync-delay", "0",
            # A replica's offset moves with its primary's pings (default every 10 s);
            # CLUSTER SLOTS lists a replica only once it moved.
            "--repl-ping-replica-period", "1",
        ]  # fmt: skip

    def client(self) -> redis.Redis:
        """A synchronous client, logged in, for set-up and inspection from tests."""
        return redis.Redis(
            port=self.port,
            username=self.username,
            password=self.password,
            decode_responses=True,
            socket_timeout=2,
        )

    @property
    def running(self) -> bool:
        """Whether the process is alive (it may still be loading)."""
        return self.process is not None and self.process.poll() is None

    def role(self) -> str:
        """What ROLE says the node is now: "master" or "slave"."""
        with self.client() as client:
            reply: list[Any] = client.execute_command("ROLE")
        return str(reply[0])


class SentinelNode(Node):
    """A Sentinel, configured by a file it may rewrite, with its own password."""

    username = None
    password = SENTINEL_PASSWORD

    def __init__(self, directory: Path, port: int, primary_port: int) -> None:
        super().__init__(directory, port)
        self.primary_port = primary_port

    def start(self) -> None:
        """Write the config on first start, then run `redis-server CONF --sentinel`."""
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "sentinel.conf"
        if not config.exists():
            config.write_text(self._config())
        self.process = subprocess.Popen(
            ["redis-server", str(config), "--sentinel"], start_new_session=True
        )
        self.wait_until_up()

    def _config(self) -> str:
        return "\n".join(
            [
                f"port {self.port}",
                "bind 127.0.0.1",
                f'dir "{self.directory}"',
                f'logfile "{self.directory / "sentinel.log"}"',
                f"requirepass {SENTINEL_PASSWORD}",
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.primary_port} 2",
                f"sentinel auth-user {MASTER_NAME} {USERNAME}",
                f'sentinel auth-pass {MASTER_NAME} "{PASSWORD}"',
                f"sentinel down-after-milliseconds {MASTER_NAME} 1000",
                f"sentinel failover-timeout {MASTER_NAME} 5000",
                f"sentinel parallel-syncs {MASTER_NAME} 1",
                "",
            ]
        )


class Topology:
    """Processes started together and stopped together, by pid."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []

    def stop(self) -> None:
        """SIGKILL every process still running (data is throw-away), and reap it."""
        for node in self.nodes:
            node.kill()

    def kill(self, node: Node) -> None:
        """SIGKILL one node: no shutdown, no save, its clients see the connection drop."""
        node.kill()

    def restart(self, node: Node) -> None:
        """Start a killed node again on its port, with its directory (and its cluster config)."""
        node.start()

    def by_port(self, port: int) -> Node:
        """The node listening on `port`."""
        return next(node for node in self.nodes if node.port == int(port))

    def live(self) -> list[Node]:
        """Nodes whose process runs."""
        return [node for node in self.nodes if node.running]

    @staticmethod
    def wait_replicated(primary: Node) -> None:
        """Block until `primary`'s replica acknowledged every write so far (WAIT)."""
        with primary.client() as client:
            assert client.execute_command("WAIT", 1, 5000) >= 1


class ClusterTopology(Topology):
    """Three primaries and three replicas, created with `redis-cli --cluster create`."""

    def __init__(self, data_args: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.data_args = list(data_args)  # more redis-server arguments for every node

    @classmethod
    @contextlib.contextmanager
    def started(cls, directory: Path, data_args: tuple[str, ...] = ()) -> Iterator[ClusterTopology]:
        """A healthy cluster for the block; every process is stopped when it ends."""
        topology = cls(data_args)
        try:
            topology._start(directory)
            yield topology
        finally:
            topology.stop()

    @property
    def url(self) -> str:
        """REDIS_URL in the redis+cluster form, with the ACL user and an escaped password."""
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes[:3])
        return f"redis+cluster://{USERNAME}:{quote(PASSWORD, safe='')}@{hosts}"

    def _start(self, directory: Path) -> None:
        for index in range(6):
            node = Node(
                directory / f"node-{index}",
                free_port_pair(),
                [
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS),
                    "--cluster-replica-validity-factor", "0",
                    *Node.server_args(),
                    *self.data_args,
                ],
            )  # fmt: skip
            self.nodes.append(node)
            node.start()
        created = subprocess.run(
            [
                "redis-cli", "--user", USERNAME, "--pass", PASSWORD, "--no-auth-warning",
                "--cluster", "create", *[f"127.0.0.1:{node.port}" for node in self.nodes],
                "--cluster-replicas", "1", "--cluster-yes",
            ],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if created.returncode != 0:
            raise RuntimeError(
                f"redis-cli --cluster create failed:\n{created.stdout}{created.stderr}"
            )
        self.wait_until_healthy()

    def slots_table(self) -> list[Any]:
        """CLUSTER SLOTS as one live node sees it."""
        for node in self.live():
            with contextlib.suppress(redis.exceptions.RedisError), node.client() as client:
                table: list[Any] = client.execute_command("CLUSTER SLOTS")
                return table
        raise RuntimeError("no live cluster node answers")

    def primary_of_slot(self, slot: int) -> Node:
        """The node that serves `slot` as primary now."""
        for first, last, primary, *_ in self.slots_table():
            if first <= slot <= last:
                return self.by_port(primary[1])
        raise LookupError(f"slot {slot} is not served")

    def primary_of_key(self, key: str) -> Node:
        """The primary that serves `key` (hash tags honoured)."""
        return self.primary_of_slot(key_slot(key.encode()))

    def primaries(self) -> list[Node]:
        """Every node that serves slots as primary now."""
        return [self.by_port(row[2][1]) for row in self.slots_table()]

    def wait_until_healthy(self) -> None:
        """Until every live node says cluster_state:ok, agrees on the slots and replicas sync."""
        wait_for(self._healthy, "a healthy cluster")

    def _healthy(self) -> bool:
        # Every live node: state ok, the same primaries and replicas per slot range, and
        # each replica's link up (a replica that never synced cannot be promoted).
        tables = []
        for node in self.live():
            with node.client() as client:
                if client.execute_command("CLUSTER INFO")["cluster_state"] != "ok":
                    return False
                table = client.execute_command("CLUSTER SLOTS")
                tables.append(sorted([row[0], *[entry[1] for entry in row[2:]]] for row in table))
            if node.role() == "slave" and not _linked(node):
                return False
        wanted_nodes = sum(len(row) - 1 for row in tables[0]) if tables else 0
        return wanted_nodes == len(self.live()) and all(table == tables[0] for table in tables)

    def wait_for_new_primary(self, slot: int, old: Node) -> Node:
        """Until a replica of the dead primary `old` serves `slot`; returns the new primary."""
        return wait_for(lambda: self._promoted(slot, old), f"a replica promoted for slot {slot}")

    def _promoted(self, slot: int, old: Node) -> Node | None:
        if not all(self._state_ok(node) for node in self.live()):
            return None
        primary = self.primary_of_slot(slot)
        return primary if primary is not old and primary.role() == "master" else None

    @staticmethod
    def _state_ok(node: Node) -> bool:
        with node.client() as client:
            return bool(client.execute_command("CLUSTER INFO")["cluster_state"] == "ok")

    def flush_scripts(self) -> None:
        """SCRIPT FLUSH on every live node, primaries and replicas."""
        for node in self.live():
            with node.client() as client:
                client.script_flush()


class SentinelTopology(Topology):
    """A primary, its replica and three Sentinels (quorum 2) that watch them."""

    def __init__(self, data_args: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.sentinels: list[SentinelNode] = []
        self.data_args = list(data_args)  # more redis-server arguments for primary and replica

    @classmethod
    @contextlib.contextmanager
    def started(
        cls, directory: Path, data_args: tuple[str, ...] = ()
    ) -> Iterator[SentinelTopology]:
        """A monitored primary and replica for the block; every process is stopped when it ends."""
        topology = cls(data_args)
        try:
            topology._start(directory)
            yield topology
        finally:
            topology.stop()

    @property
    def url(self) -> str:
        """REDIS_URL in the redis+sentinel form, with the data nodes' ACL user and password."""
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{USERNAME}:{quote(PASSWORD, safe='')}@{hosts}/{MASTER_NAME}"

    def _start(self, directory: Path) -> None:
        args = [*Node.server_args(), *self.data_args]
        primary = Node(directory / "primary", free_port_pair(), args)
        self.nodes.append(primary)
        primary.start()
        replica_args = [*args, "--replicaof", "127.0.0.1", str(primary.port)]
        replica = Node(directory / "replica", free_port_pair(), replica_args)
        self.nodes.append(replica)
        replica.start()
        wait_for(lambda: _linked(replica), "the replica in sync")
        for index in range(3):
            sentinel = SentinelNode(directory / f"sentinel-{index}", free_port_pair(), primary.port)
            self.sentinels.append(sentinel)
            self.nodes.append(sentinel)
            sentinel.start()
        wait_for(self._watching, "three Sentinels that see the replica and each other")

    def data_nodes(self) -> list[Node]:
        """The primary and the replica, in no particular order."""
        return [node for node in self.nodes if not isinstance(node, SentinelNode)]

    def current_primary(self) -> Node:
        """The data node the first live Sentinel names as master."""
        sentinel = next(node for node in self.sentinels if node.running)
        with sentinel.client() as client:
            _, port = client.sentinel_get_master_addr_by_name(MASTER_NAME)
        return self.by_port(int(port))

    def failover(self) -> Node:
        """SENTINEL FAILOVER, once the replica has every write; returns the promoted replica.

        Returns when every Sentinel names it. The old primary stays a primary until a
        Sentinel demotes it (at its next INFO, up to ~10 s later): `wait_settled` waits.
        """
        old = self.current_primary()
        self.wait_replicated(old)
        # Refused (INPROG, NOGOODSLAVE) while an earlier failover settles: ask again.
        wait_for(self._ask_failover, "the Sentinels to accept SENTINEL FAILOVER")
        return self.wait_for_new_primary(old)

    def _ask_failover(self) -> bool:
        with self.sentinels[0].client() as client:
            return bool(client.execute_command("SENTINEL FAILOVER", MASTER_NAME))

    def rejoin(self, node: Node, primary: Node) -> None:
        """Start `node` if it is down and make it `primary`'s replica, in sync.

        Sentinel does this too, but only 8 to 10 s after it sees the node claim to be
        a master (a restarted old master, or one left behind by a failover).
        """
        if not node.running:
            node.start()
        with node.client() as client:
            client.replicaof("127.0.0.1", primary.port)
        wait_for(lambda: _linked(node), f"node {node.port} to follow {primary.port}")

    def wait_for_new_primary(self, old: Node) -> Node:
        """Until every Sentinel names a primary other than `old` (killed, or failed over)."""
        return wait_for(lambda: self._promoted(old), "the Sentinels to name a new primary")

    def wait_settled(self) -> None:
        """Until the primary's only peer is its replica again, linked and in sync."""
        primary = self.current_primary()
        replica = next(node for node in self.data_nodes() if node is not primary)
        wait_for(lambda: _linked(replica), "the old primary to follow the new one", 30.0)

    def _promoted(self, old: Node) -> Node | None:
        named = set()
        for sentinel in self.sentinels:
            with sentinel.client() as client:
                named.add(int(client.sentinel_get_master_addr_by_name(MASTER_NAME)[1]))
        if len(named) != 1 or old.port in named:
            return None
        new = self.by_port(named.pop())
        return new if new.role() == "master" else None

    def _watching(self) -> bool:
        for sentinel in self.sentinels:
            with sentinel.client() as client:
                state = client.sentinel_master(MASTER_NAME)
            if int(state["num-slaves"]) < 1 or int(state["num-other-sentinels"]) < 2:
                return False
        return True


def _linked(replica: Node) -> bool:
    """Whether `replica` is a replica whose link to its primary is up."""
    with replica.client() as client:
        info = client.info("replication")
    return bool(info["role"] == "slave" and info["master_link_status"] == "up")
