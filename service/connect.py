"""Building the Redis client from REDIS_URL.

    redis://[user:password@]host:port/db            one server
    rediss://...                                    one server over TLS
    unix://[user:password@]/path/to/redis.sock      one server on a unix socket
    redis+cluster://[user:password@]host:port[,host:port...]
                                                    Redis Cluster, discovered from any node
    redis+sentinel://[user:password@]host:port[,host:port...]/MASTER_NAME
                                                    the master the Sentinels name, followed
                                                    across failovers
    memory://                                       in-process fakeredis (one worker, data
                                                    lost at exit; for trying the service;
                                                    needs the `memory` extra)

`rediss+cluster://` and `rediss+sentinel://` use TLS on every connection, the
Sentinels' included. The user and password in a URL are the data nodes'
(percent-encode `@`, `:` and `/` in them); Sentinels take their own password
from SLOTLOCK_SENTINEL_PASSWORD, and TLS files and checks come from
SLOTLOCK_REDIS_TLS_* (ConnectionOptions). A URL reaches a log or an error
message only through `redacted_url`.

Script calls take one of two wire paths (service/store/transport.py), chosen
here from the URL by `transport_for`: redis:// and unix:// (one plain server)
get the raw pipelined connection; TLS, Cluster, Sentinel and memory:// go
through the redis-py client built here.

Every form gets the same timeouts and no automatic retries: a retried script
call after a broken connection could apply a change twice, so the client is
told 503 instead and retries with its Idempotency-Key.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from service import memory_mode
from service.redis_clients import (
    FollowingSentinelPool,
    OutageAwareRedis,
    ReroutingCluster,
    SentinelMaster,
)
from service.settings import Settings, SettingsError
from service.store.client import RedisClient
from service.store.raw_redis import RawTransport, ServerAddress
from service.store.redis_py import ClientTransport
from service.store.transport import Transport

logger = logging.getLogger("slotlock.redis")

T = TypeVar("T")

MEMORY_URL = "memory://"
SINGLE_SCHEMES = ("redis", "rediss", "unix")
RAW_SCHEMES = ("redis", "unix")  # one plain server: the raw transport speaks to it
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
_DEFAULT_PORT = {"cluster": 6379, "sentinel": 26379}
_HEALTH_CHECK_INTERVAL_S = 30
# Connections per worker (per node on Cluster). Script calls share at most two
# through the batcher; the rest serve reads, lists and key lookups in bursts.
MAX_CONNECTIONS = 512
_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True} | {
    "0": False, "false": False, "no": False, "off": False
}  # fmt: skip

# The userinfo ends at the last "@", so an unencoded "@" in a password is hidden too;
# a URL without its scheme (a typo) is still redacted.
_USERINFO = re.compile(
    r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)?(?P<userinfo>.*)@(?P<rest>[^@]*)$", re.DOTALL
)
_QUERY_SECRET = re.compile(r"([?&][^=&#]*pass[^=&#]*=)[^&#]*", re.IGNORECASE)
_DATABASE_PATH = re.compile(r"^/?\d*$")
_NODE = re.compile(r"^(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]+))(?::(?P<port>\d+))?$")


@dataclass(frozen=True, slots=True)
class ConnectionOptions:
    """What REDIS_URL does not say: TLS files and checks, and the Sentinels' own password."""

    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_verify: bool = True
    sentinel_password: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ConnectionOptions:
        """Read SLOTLOCK_REDIS_TLS_* and SLOTLOCK_SENTINEL_PASSWORD; errors name the variable."""
        env = os.environ if environ is None else environ
        options = cls(
            tls_ca_file=_read(env, "SLOTLOCK_REDIS_TLS_CA_FILE", _existing_file, None),
            tls_cert_file=_read(env, "SLOTLOCK_REDIS_TLS_CERT_FILE", _existing_file, None),
            tls_key_file=_read(env, "SLOTLOCK_REDIS_TLS_KEY_FILE", _existing_file, None),
            tls_verify=_read(env, "SLOTLOCK_REDIS_TLS_VERIFY", _boolean, True),
            sentinel_password=env.get("SLOTLOCK_SENTINEL_PASSWORD") or None,
        )
        if options.tls_key_file is not None and options.tls_cert_file is None:
            raise SettingsError(
                "SLOTLOCK_REDIS_TLS_KEY_FILE is set without SLOTLOCK_REDIS_TLS_CERT_FILE"
            )
        return options

    def tls_kwargs(self) -> dict[str, Any]:
        """redis-py's ssl_* arguments for these options."""
        return {
            "ssl_ca_certs": None if self.tls_ca_file is None else str(self.tls_ca_file),
            "ssl_certfile": None if self.tls_cert_file is None else str(self.tls_cert_file),
            "ssl_keyfile": None if self.tls_key_file is None else str(self.tls_key_file),
            "ssl_cert_reqs": "required" if self.tls_verify else "none",
            "ssl_check_hostname": self.tls_verify,
        }

    def check_fits(self, url: str) -> None:
        """Refuse TLS files for a URL without TLS: they would be silently ignored."""
        if url.lower().startswith("rediss"):
            return
        files = {
            "SLOTLOCK_REDIS_TLS_CA_FILE": self.tls_ca_file,
            "SLOTLOCK_REDIS_TLS_CERT_FILE": self.tls_cert_file,
            "SLOTLOCK_REDIS_TLS_KEY_FILE": self.tls_key_file,
        }
        for name, value in files.items():
            if value is not None:
                raise SettingsError(
                    f"{name} is set but REDIS_URL={redacted_url(url)!r} does not use TLS "
                    "(rediss://, rediss+cluster://, rediss+sentinel://)"
                )


@dataclass(frozen=True, slots=True)
class NodesUrl:
    """A parsed redis+cluster:// or redis+sentinel:// URL (or its rediss+ form)."""

    kind: str  # "cluster" or "sentinel"
    tls: bool
    nodes: list[tuple[str, int]]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    master_name: str | None = None

    @classmethod
    def parse(cls, url: str) -> NodesUrl:
        """Read `scheme://[user[:password]@]host:port[,host:port...][/path]`, naming REDIS_URL."""
        scheme, _, rest = url.partition("://")
        scheme = scheme.lower()
        if scheme not in CLUSTER_SCHEMES + SENTINEL_SCHEMES:
            raise _url_error(url, "not a redis+cluster:// or redis+sentinel:// URL")
        kind = "cluster" if scheme in CLUSTER_SCHEMES else "sentinel"
        userinfo, _, location = rest.rpartition("@")
        if "?" in location or "#" in location:
            raise _url_error(url, "query parameters are not supported here")
        hosts, _, path = location.partition("/")
        nodes = [_node(url, text, _DEFAULT_PORT[kind]) for text in hosts.split(",")]
        username, _, password = userinfo.partition(":")
        if kind == "sentinel" and (not path or "/" in path):
            raise _url_error(url, "expected /MASTER_NAME after the Sentinel addresses")
        if kind == "cluster" and path not in ("", "0"):
            raise _url_error(url, "Redis Cluster has only database 0")
        return cls(
            kind=kind,
            tls=scheme.startswith("rediss"),
            nodes=nodes,
            username=unquote(username) or None,
            password=unquote(password) or None,
            master_name=unquote(path) if kind == "sentinel" else None,
        )


def redis_from_settings(
    settings: Settings, options: ConnectionOptions | None = None
) -> RedisClient:
    """A client for settings.redis_url (which must be set); options default to the environment."""
    url = settings.redis_url
    if url is None:
        raise ValueError("REDIS_URL is not set")
    if url == MEMORY_URL:
        return _memory_redis()
    found = ConnectionOptions.from_env() if options is None else options
    found.check_fits(url)
    scheme = url.partition("://")[0].lower()
    if scheme not in SINGLE_SCHEMES + CLUSTER_SCHEMES + SENTINEL_SCHEMES:
        raise _url_error(url, "expected redis://, rediss://, unix://, redis+cluster://, "
                         "redis+sentinel:// (or their rediss+ forms) or memory://")  # fmt: skip
    logger.info("redis: connecting", extra={"redis_url": redacted_url(url)})
    if scheme in CLUSTER_SCHEMES:
        return _cluster(NodesUrl.parse(url), settings, found)
    if scheme in SENTINEL_SCHEMES:
        return _sentinel_master(NodesUrl.parse(url), settings, found)
    tls = found.tls_kwargs() if scheme == "rediss" else {}
    if scheme != "unix" and not _DATABASE_PATH.match(urlsplit(url).path):
        raise _url_error(url, "the path must be a database number")  # redis-py would ignore it
    try:
        # A burst beyond the pool waits for a free connection (up to the Redis
        # timeout) instead of failing at once as redis-py's default pool does.
        pool = BlockingConnectionPool.from_url(
            url, timeout=settings.redis_timeout_s, **_common_kwargs(settings), **tls
        )
    except ValueError as error:
        raise _url_error(url, str(error)) from None
    return OutageAwareRedis.from_pool(pool)


def transport_for(settings: Settings, redis: RedisClient) -> Transport:
    """How script calls reach Redis: the raw connection to the one plain server that
    settings.redis_url names, else `redis` itself (which must be the URL's client).

    Chosen from the URL alone. A client handed in without a URL (tests, embedding)
    goes through redis-py, which serves every topology.
    """
    url = settings.redis_url
    if url is not None and url.partition("://")[0].lower() in RAW_SCHEMES:
        return RawTransport(ServerAddress.from_url(url), settings.redis_timeout_s)
    return ClientTransport(redis)


def redacted_url(url: str) -> str:
    """The URL with its password replaced by `***`, fit for a log line; never raises."""
    text = _QUERY_SECRET.sub(r"\1***", url)
    match = _USERINFO.match(text)
    if match is None:
        return text
    username, colon, _ = match.group("userinfo").partition(":")
    shown = f"{username}:***" if colon else username
    return f"{match.group('scheme') or ''}{shown}@{match.group('rest')}"


def _cluster(target: NodesUrl, settings: Settings, options: ConnectionOptions) -> RedisCluster:
    if settings.replica_acks:
        # WAIT counts the writes of its own connection, and a cluster pipeline cannot
        # send it on the connections that wrote: the setting would be silently void.
        raise SettingsError(
            "SLOTLOCK_REPLICA_ACKS is not supported with redis+cluster:// "
            "(set min-replicas-to-write on the cluster's primaries instead)"
        )
    tls = {"ssl": True, **options.tls_kwargs()} if target.tls else {}
    return ReroutingCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
        username=target.username,
        password=target.password,
        **_common_kwargs(settings),
        **tls,
    )


def _sentinel_master(target: NodesUrl, settings: Settings, options: ConnectionOptions) -> Redis:
    tls = {"ssl": True, **options.tls_kwargs()} if target.tls else {}
    sentinel_kwargs = {
        **_common_kwargs(settings),
        "decode_responses": False,  # redis-py parses SENTINEL replies itself
        "password": options.sentinel_password,
        **tls,
    }
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        target.nodes,
        sentinel_kwargs=sentinel_kwargs,
        username=target.username,
        password=target.password,
        **_common_kwargs(settings),
        **tls,
    )
    assert target.master_name is not None
    master = sentinel.master_for(
        target.master_name, redis_class=SentinelMaster, connection_pool_class=FollowingSentinelPool
    )
    assert isinstance(master, SentinelMaster)
    master.sentinels = sentinel
    return master


def _common_kwargs(settings: Settings) -> dict[str, Any]:
    return {
        "max_connections": MAX_CONNECTIONS,
        "decode_responses": True,
        "socket_timeout": settings.redis_timeout_s,
        "socket_connect_timeout": settings.redis_timeout_s,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": _HEALTH_CHECK_INTERVAL_S,
    }


def _node(url: str, text: str, default_port: int) -> tuple[str, int]:
    match = _NODE.match(text.strip())
    port = int(match.group("port") or default_port) if match else 0
    if match is None or not 0 < port < 65536:
        raise _url_error(url, f"{text!r} is not host:port")
    return match.group("ipv6") or match.group("host"), port


def _url_error(url: str, reason: str) -> SettingsError:
    return SettingsError(f"REDIS_URL={redacted_url(url)!r} is invalid: {reason}")


def _read(environ: Mapping[str, str], name: str, parse: Callable[[str], T], default: T) -> T:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw)
    except ValueError as error:
        raise SettingsError(f"{name}={raw!r} is invalid: {error}") from None


def _existing_file(raw: str) -> Path:
    path = Path(raw)
    if not path.is_file():
        raise ValueError("no such file")
    return path


def _boolean(raw: str) -> bool:
    value = _BOOLEANS.get(raw.strip().lower())
    if value is None:
        raise ValueError("expected true or false")
    return value


def _memory_redis() -> RedisClient:
    if not memory_mode.available():
        raise SettingsError(f"REDIS_URL=memory://: {memory_mode.NEEDS_EXTRA}")
    from service.fake_redis import fake_redis  # imported here: only memory:// needs it (an extra)

    return fake_redis()
