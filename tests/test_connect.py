"""REDIS_URL forms, their settings and redaction; TLS and unreachable nodes on loopback."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import uvloop
from hypothesis import given
from hypothesis import strategies as st
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection
from starlette.testclient import TestClient

from service.app import create_app
from service.connect import (
    ConnectionOptions,
    NodesUrl,
    redacted_url,
    redis_from_settings,
    transport_for,
)
from service.redis_clients import (
    FollowingSentinelPool,
    OutageAwareRedis,
    ReroutingCluster,
    SentinelMaster,
)
from service.settings import Settings, SettingsError
from service.store.raw_redis import RawTransport, ServerAddress
from service.store.redis_py import ClientTransport
from tests.api import error_of
from tests.redis_servers import RedisServer, free_port
from tests.topologies import Server

SECRET = "s3cr3t-Pa55"
NO_OPTIONS = ConnectionOptions()


def build(url: str, options: ConnectionOptions = NO_OPTIONS, timeout_s: float = 1.5) -> Any:
    """The client redis_from_settings makes for `url` (nothing is dialled yet)."""
    return redis_from_settings(Settings(redis_url=url, redis_timeout_s=timeout_s), options)


def close(client: Any) -> None:
    """Close a client that never connected."""
    asyncio.run(client.aclose())


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://app:s3cr3t@cache:6379/0", "redis://app:***@cache:6379/0"),
        ("rediss://:s3cr3t@cache:6380", "rediss://:***@cache:6380"),
        ("redis://app@cache:6379", "redis://app@cache:6379"),
        ("redis://cache:6379/2", "redis://cache:6379/2"),
        ("unix://app:s3cr3t@/run/redis.sock?db=1", "unix://app:***@/run/redis.sock?db=1"),
        ("unix:///run/redis.sock?password=s3cr3t&db=1", "unix:///run/redis.sock?password=***&db=1"),
        ("redis+cluster://app:s3%40cr@h1:7000,h2:7001", "redis+cluster://app:***@h1:7000,h2:7001"),
        (
            "redis+sentinel://:p@ss/w:rd@s1:26379/mymaster",
            "redis+sentinel://:***@s1:26379/mymaster",
        ),
        ("app:s3cr3t@cache:6379", "app:***@cache:6379"),
        ("redis://:s3cr3t\n@cache:6379\n", "redis://:***@cache:6379\n"),
        ("memory://", "memory://"),
        ("not a url @ all", "not a url @ all"),
    ],
)
def test_redacted_url_hides_passwords_only(url: str, shown: str) -> None:
    """Passwords in the userinfo or the query become ***; user names, hosts and paths stay."""
    assert redacted_url(url) == shown


@given(st.text(min_size=1, alphabet=st.characters(codec="utf-8")))
def test_redacted_url_never_shows_a_password(password: str) -> None:
    """Whatever the password holds (even @, : or /), the redacted URL shows *** in its place."""
    assert redacted_url(f"redis+cluster://app:{password}@h1:7000,h2:7001") == (
        "redis+cluster://app:***@h1:7000,h2:7001"
    )


def test_cluster_url_parses_nodes_and_credentials() -> None:
    """Hosts, ports (6379 by default, IPv6 in brackets) and the decoded user and password."""
    parsed = NodesUrl.parse("redis+cluster://app:p%40ss%3Aw%2Frd@h1:7000,h2,[::1]:7002")
    assert (parsed.kind, parsed.tls) == ("cluster", False)
    assert parsed.nodes == [("h1", 7000), ("h2", 6379), ("::1", 7002)]
    assert (parsed.username, parsed.password) == ("app", "p@ss:w/rd")
    assert SECRET not in repr(NodesUrl.parse(f"redis+cluster://:{SECRET}@h1:7000"))


def test_sentinel_url_parses_master_name() -> None:
    """The path names the master; Sentinels default to port 26379; rediss+ means TLS."""
    parsed = NodesUrl.parse("rediss+sentinel://s1,s2:5000/my-primary")
    assert (parsed.kind, parsed.tls, parsed.master_name) == ("sentinel", True, "my-primary")
    assert parsed.nodes == [("s1", 26379), ("s2", 5000)]
    assert (parsed.username, parsed.password) == (None, None)


@pytest.mark.parametrize(
    "url",
    [
        f"redis+sentinel://:{SECRET}@s1:26379",
        f"redis+sentinel://:{SECRET}@s1:26379/a/b",
        f"redis+cluster://:{SECRET}@h1:7000/1",
        f"redis+cluster://:{SECRET}@h1:port",
        f"redis+cluster://:{SECRET}@h1:7000,,h2:7001",
        f"redis+cluster://:{SECRET}@h1:99999",
        f"redis+cluster://:{SECRET}@h1:7000?ssl_cert_reqs=none",
        f"memcached://:{SECRET}@h1:11211",
        f"app:{SECRET}@h1:6379",
        f"redis://:{SECRET}@h1:7000/notadb",
    ],
)
def test_bad_urls_name_redis_url_without_the_password(url: str) -> None:
    """A malformed REDIS_URL stops start-up with an error naming it, its password redacted."""
    with pytest.raises(SettingsError, match="REDIS_URL") as raised:
        close(build(url))
    assert SECRET not in str(raised.value)


def test_single_server_gets_timeouts_and_no_retries() -> None:
    """redis:// keeps its credentials and gets the timeouts and a zero-retry policy."""
    client = build(f"redis://app:{SECRET}@cache:6379/3")
    assert isinstance(client, Redis)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"], kwargs["db"]) == ("app", SECRET, 3)
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (1.5, 1.5)
    assert kwargs["retry"].get_retries() == 0
    close(client)


def test_unix_socket_keeps_user_password_and_database() -> None:
    """unix:// takes its ACL user, password and database from the URL, with the same timeouts."""
    client = build(f"unix://app:{SECRET}@/run/redis.sock?db=2")
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["path"], kwargs["username"], kwargs["password"]) == (
        "/run/redis.sock",
        "app",
        SECRET,
    )
    assert (kwargs["db"], kwargs["socket_timeout"], kwargs["retry"].get_retries()) == (2, 1.5, 0)
    close(client)


def test_rediss_uses_the_tls_settings(tmp_path: Path) -> None:
    """rediss:// connects over TLS with the CA, certificate and key files of the settings."""
    files = {name: tmp_path / name for name in ("ca.pem", "cert.pem", "key.pem")}
    for path in files.values():
        path.write_text("-")
    options = ConnectionOptions.from_env(
        {
            "SLOTLOCK_REDIS_TLS_CA_FILE": str(files["ca.pem"]),
            "SLOTLOCK_REDIS_TLS_CERT_FILE": str(files["cert.pem"]),
            "SLOTLOCK_REDIS_TLS_KEY_FILE": str(files["key.pem"]),
            "SLOTLOCK_REDIS_TLS_VERIFY": "false",
        }
    )
    client = build("rediss://cache:6380", options)
    pool = client.connection_pool
    assert pool.connection_class is SSLConnection
    assert pool.connection_kwargs["ssl_ca_certs"] == str(files["ca.pem"])
    assert pool.connection_kwargs["ssl_keyfile"] == str(files["key.pem"])
    assert pool.connection_kwargs["ssl_cert_reqs"] == "none"
    close(client)


def test_cluster_url_builds_a_cluster_client() -> None:
    """redis+cluster:// is a RedisCluster on the startup nodes, with credentials and no retries."""
    client = build(f"redis+cluster://app:{SECRET}@h1:7000,h2:7001")
    assert isinstance(client, ReroutingCluster)
    assert isinstance(client, RedisCluster)
    assert [node.name for node in client.startup_nodes] == ["h1:7000", "h2:7001"]
    kwargs = client.connection_kwargs
    assert (kwargs["username"], kwargs["password"], kwargs["socket_timeout"]) == (
        "app",
        SECRET,
        1.5,
    )
    assert client.retry.get_retries() == 0
    close(client)


def test_tls_cluster_url_builds_tls_connections() -> None:
    """rediss+cluster:// makes every node connection a TLS one."""
    client = build("rediss+cluster://h1:7000")
    assert client.connection_kwargs["connection_class"] is SSLConnection
    close(client)


def test_sentinel_url_builds_a_client_of_the_master() -> None:
    """redis+sentinel:// is a client of the named master; Sentinels get their own password."""
    options = ConnectionOptions(sentinel_password="sentinel-only")
    client = build(f"redis+sentinel://app:{SECRET}@s1:5000,s2:5001/primary", options)
    assert isinstance(client, SentinelMaster)
    pool = client.connection_pool
    assert isinstance(pool, FollowingSentinelPool)
    assert pool.service_name == "primary"
    assert (pool.connection_kwargs["username"], pool.connection_kwargs["password"]) == (
        "app",
        SECRET,
    )
    assert pool.connection_kwargs["retry"].get_retries() == 0
    assert client.sentinels is not None
    sentinel_kwargs = [s.connection_pool.connection_kwargs for s in client.sentinels.sentinels]
    assert [(kw["port"], kw["password"]) for kw in sentinel_kwargs] == [
        (5000, "sentinel-only"),
        (5001, "sentinel-only"),
    ]
    assert all(kw["retry"].get_retries() == 0 for kw in sentinel_kwargs)
    close(client)


def test_memory_url_is_fakeredis() -> None:
    """memory:// is an in-process fakeredis."""
    client = build("memory://")
    assert type(client).__module__.startswith("fakeredis")
    close(client)


def test_connecting_logs_the_url_redacted(caplog: pytest.LogCaptureFixture) -> None:
    """The URL reaches the log only redacted."""
    with caplog.at_level(logging.INFO, logger="slotlock.redis"):
        close(build(f"redis+cluster://app:{SECRET}@h1:7000"))
    assert [getattr(record, "redis_url", None) for record in caplog.records] == [
        "redis+cluster://app:***@h1:7000"
    ]
    assert all(SECRET not in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SLOTLOCK_REDIS_TLS_CA_FILE", "/nowhere/ca.pem"),
        ("SLOTLOCK_REDIS_TLS_CERT_FILE", "/nowhere/cert.pem"),
        ("SLOTLOCK_REDIS_TLS_KEY_FILE", "/nowhere/key.pem"),
        ("SLOTLOCK_REDIS_TLS_VERIFY", "maybe"),
    ],
)
def test_bad_tls_settings_name_their_variable(variable: str, value: str) -> None:
    """A missing file or a non-boolean stops start-up with an error naming the variable."""
    with pytest.raises(SettingsError, match=variable):
        ConnectionOptions.from_env({variable: value})


def test_tls_defaults_verify_and_read_booleans() -> None:
    """TLS checks are on unless told otherwise; the usual boolean spellings are accepted."""
    assert ConnectionOptions.from_env({}).tls_verify is True
    assert ConnectionOptions.from_env({"SLOTLOCK_REDIS_TLS_VERIFY": "Off"}).tls_verify is False
    assert ConnectionOptions.from_env({"SLOTLOCK_REDIS_TLS_VERIFY": "1"}).tls_verify is True


def test_key_file_needs_a_cert_file(tmp_path: Path) -> None:
    """A TLS key without its certificate is refused, naming both variables."""
    key = tmp_path / "key.pem"
    key.write_text("-")
    with pytest.raises(SettingsError, match=r"SLOTLOCK_REDIS_TLS_KEY_FILE.*CERT_FILE"):
        ConnectionOptions.from_env({"SLOTLOCK_REDIS_TLS_KEY_FILE": str(key)})


def test_tls_files_need_a_tls_url(tmp_path: Path) -> None:
    """TLS files with a plain redis:// URL are refused rather than silently ignored."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-")
    options = ConnectionOptions.from_env({"SLOTLOCK_REDIS_TLS_CA_FILE": str(ca)})
    with pytest.raises(SettingsError, match=r"SLOTLOCK_REDIS_TLS_CA_FILE.*does not use TLS"):
        build(f"redis://:{SECRET}@cache:6379", options)


def test_sentinel_password_stays_out_of_repr() -> None:
    """The Sentinels' password never shows in the options' repr (a log line could print it)."""
    options = ConnectionOptions.from_env({"SLOTLOCK_SENTINEL_PASSWORD": SECRET})
    assert options.sentinel_password == SECRET
    assert SECRET not in repr(options)


@pytest.mark.parametrize(
    "form", ["redis+cluster://127.0.0.1:{port}", "redis+sentinel://127.0.0.1:{port}/m"]
)
def test_unreachable_cluster_or_sentinel_is_an_outage(form: str) -> None:
    """With no node answering, the app still starts; /readyz and requests are 503 E103."""
    settings = Settings(redis_url=form.format(port=free_port()), redis_timeout_s=0.5)
    app = create_app(settings, redis_from_settings(settings, NO_OPTIONS), owns_redis=True)
    with TestClient(app, raise_server_exceptions=True) as client:
        assert error_of(client.get("/readyz")) == (503, "E103")
        bearer = {"authorization": "Bearer pk_" + "a" * 64}
        assert error_of(client.get("/resources", headers=bearer)) == (503, "E103")


def make_tls_files(directory: Path) -> dict[str, Path]:
    """A CA, and a server (for 127.0.0.1) and a client certificate it signed, as PEM files."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    steps = [["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=ca"]]
    for name, extra in (("server", ["-extfile", "san.ext"]), ("client", [])):
        steps += [
            ["req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}"],
            ["x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "1", "-out", f"{name}.pem", *extra],
        ]  # fmt: skip
    for step in steps:
        subprocess.run(["openssl", *step], cwd=directory, check=True, capture_output=True)
    return {
        name: directory / name
        for name in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")
    }


def ping(url: str, options: ConnectionOptions) -> bool:
    """Whether a client built for `url` with `options` gets PONG."""

    async def go() -> bool:
        client = build(url, options)
        try:
            return bool(await client.ping())
        finally:
            await client.aclose()

    return asyncio.run(go())


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_rediss_verifies_the_server_and_presents_a_client_certificate(tmp_path: Path) -> None:
    """rediss:// with the TLS settings reaches a TLS-only port that demands a client certificate."""
    files = make_tls_files(tmp_path)
    tls_port = free_port()
    server = Server.start_new(
        tmp_path / "redis",
        ["--tls-port", str(tls_port), "--tls-cert-file", str(files["server.pem"]),
         "--tls-key-file", str(files["server.key"]), "--tls-ca-cert-file", str(files["ca.pem"]),
         "--tls-auth-clients", "yes"],
    )  # fmt: skip
    try:
        env = {
            "SLOTLOCK_REDIS_TLS_CA_FILE": str(files["ca.pem"]),
            "SLOTLOCK_REDIS_TLS_CERT_FILE": str(files["client.pem"]),
            "SLOTLOCK_REDIS_TLS_KEY_FILE": str(files["client.key"]),
        }
        url = f"rediss://127.0.0.1:{tls_port}/0"
        assert ping(url, ConnectionOptions.from_env(env))
        untrusting = ConnectionOptions.from_env(
            {**env, "SLOTLOCK_REDIS_TLS_CA_FILE": str(files["client.pem"])}
        )
        with pytest.raises(redis_errors.ConnectionError):
            ping(url, untrusting)  # the server's certificate is checked against the CA file
        lax = ConnectionOptions.from_env(
            {**env, "SLOTLOCK_REDIS_TLS_CA_FILE": "", "SLOTLOCK_REDIS_TLS_VERIFY": "no"}
        )
        assert ping(url, lax)
    finally:
        server.kill()


def test_replica_acks_are_refused_on_cluster() -> None:
    """WAIT cannot reach a cluster pipeline's writing connections, so the setting is refused."""
    settings = Settings(redis_url="redis+cluster://127.0.0.1:7000", replica_acks=1)
    with pytest.raises(SettingsError, match="SLOTLOCK_REPLICA_ACKS"):
        redis_from_settings(settings, ConnectionOptions())


@pytest.mark.parametrize(
    ("url", "raw_address"),
    [
        (
            "redis://app:s3cr3t@cache:6380/2",
            ServerAddress(host="cache", port=6380, username="app", password="s3cr3t", db=2),
        ),
        ("redis://cache", ServerAddress(host="cache", port=6379)),
        (
            "unix://:s3cr3t@/run/redis.sock?db=1",
            ServerAddress(unix_path="/run/redis.sock", password="s3cr3t", db=1),
        ),
        ("rediss://cache:6380", None),
        ("redis+cluster://h1:7000,h2:7001", None),
        ("redis+sentinel://s1:26379/mymaster", None),
        ("memory://", None),
    ],
)
def test_the_url_alone_chooses_how_script_calls_travel(
    url: str, raw_address: ServerAddress | None
) -> None:
    """One plain server gets the raw connection, with the URL's address and login; TLS,
    Cluster, Sentinel and memory:// go through their redis-py client."""
    settings = Settings(redis_url=url, redis_timeout_s=1.5)
    client = redis_from_settings(settings, NO_OPTIONS)
    transport = transport_for(settings, client)
    if raw_address is None:
        assert type(transport) is ClientTransport
    else:
        assert isinstance(transport, RawTransport)
        assert transport.address == raw_address
    close(client)


def test_a_client_handed_in_without_a_url_takes_redis_py() -> None:
    """An app built on a client of its caller's (tests, embedding) sends scripts through it."""
    client = Redis(port=free_port())
    assert type(transport_for(Settings(), client)) is ClientTransport
    close(client)


async def _on_a_connection_closed_under_redis_py(url: str) -> list[type[BaseException]]:
    """A command and a pipeline on a pooled connection whose transport uvloop has closed
    (as when Redis is killed while redis-py reconnects): what each raises."""
    client = redis_from_settings(Settings(redis_url=url))
    assert isinstance(client, OutageAwareRedis)
    raised: list[type[BaseException]] = []

    async def command() -> object:
        return await client.get("k")

    async def pipeline() -> object:
        pipe = client.pipeline()
        pipe.get("k")
        return await pipe.execute()

    for call in (command, pipeline):
        connection = await client.connection_pool.get_connection()  # type: ignore[no-untyped-call]
        connection._writer.transport.abort()  # redis-py is not told
        await client.connection_pool.release(connection)
        try:
            await call()
        except BaseException as error:  # what is raised is the result
            raised.append(type(error))
    await client.aclose()
    return raised


def test_a_connection_closed_under_a_command_is_an_outage(tmp_path: Path) -> None:
    """uvloop's RuntimeError for a closed transport is a ConnectionError (503 E103), for a
    single command and for a pipeline, not a 500."""
    server = RedisServer.start_new(tmp_path)
    try:
        raised = uvloop.run(_on_a_connection_closed_under_redis_py(server.url))
    finally:
        server.kill()
    assert raised == [redis_errors.ConnectionError, redis_errors.ConnectionError]
