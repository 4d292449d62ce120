"""Live availability over real HTTP: GET /resources/:id/events on `slotlock serve`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import aiohttp
import pytest

from tests.live import LiveApi, LiveService, create_keys, lock_body, wait_for
from tests.redis_servers import RedisServer
from tests.sse import EventReader

WRITERS = 20


@pytest.fixture(scope="module")
def redis_for_events(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of this module's own."""
    server = RedisServer.start_new(tmp_path_factory.mktemp("events-redis"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def service(
    redis_for_events: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveService]:
    """`slotlock serve` on that Redis, ready."""
    live = LiveService(
        tmp_path_factory.mktemp("events") / "slotlock.log", REDIS_URL=redis_for_events.url
    )
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def live(service: LiveService, redis_for_events: RedisServer) -> Iterator[LiveApi]:
    """A client with a key pair from `slotlock keys create`."""
    client = LiveApi(service, create_keys(redis_for_events.url))
    yield client
    client.close()


def new_resource(live: LiveApi) -> str:
    """A published resource with no slots yet."""
    resource = live.ok("POST", "/resources", {"name": "Streamed room"})
    live.ok("POST", f"/resources/{resource['id']}/publish")
    return str(resource["id"])


def new_slot(live: LiveApi, resource_id: str, hours_ahead: float = 24, capacity: int = 1) -> Any:
    """A slot of `resource_id`, half an hour long."""
    start = time.time() + hours_ahead * 3600
    body = {
        "resource_id": resource_id,
        "start_date": datetime.fromtimestamp(start).astimezone().isoformat(),
        "end_date": datetime.fromtimestamp(start + 1800).astimezone().isoformat(),
        "capacity": capacity,
    }
    return live.ok("POST", "/slots", body)


def event_id(live: LiveApi, resource_id: str) -> str:
    """meta.event_id of the resource's slot list."""
    response = live.call("GET", f"/slots?resource_id={resource_id}", key="public")
    assert response.status_code == 200, response.text
    found = response.json()["meta"]["event_id"]
    assert isinstance(found, str)
    return found


@asynccontextmanager
async def stream(
    live: LiveApi, resource_id: str, *, key: str = "public", query: str = "", **headers: str
) -> AsyncIterator[EventReader]:
    """An open event stream of `resource_id`, closed on leaving."""
    url = f"{live.service.url}/resources/{resource_id}/events{query}"
    sent = ({} if query.startswith("?key=") else live.headers(key)) | headers
    async with aiohttp.ClientSession() as session:
        reader = await EventReader.open(session, url, sent)
        try:
            yield reader
        finally:
            await reader.close()


def run(body: Callable[[], Awaitable[None]]) -> None:
    """Run an async test body."""
    asyncio.run(body())  # type: ignore[arg-type]


async def in_thread(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A blocking LiveApi call off the event loop, so the stream keeps reading."""
    return await asyncio.to_thread(call, *args, **kwargs)


def test_every_event_type_arrives_with_the_slot_as_get_shows_it(live: LiveApi) -> None:
    """Each kind of change shows as its own event, carrying the slot as GET /slots/:id shows it."""
    resource_id = new_resource(live)

    async def body() -> None:
        async with stream(live, resource_id) as reader:
            assert reader.response.status == 200
            assert reader.response.headers["content-type"].startswith("text/event-stream")
            slot = await in_thread(new_slot, live, resource_id)
            slot_path = f"/slots/{slot['id']}"
            await in_thread(live.ok, "PATCH", slot_path, {"metadata": {"room": "B"}})
            await in_thread(live.ok, "POST", f"{slot_path}/disable")
            await in_thread(live.ok, "POST", f"{slot_path}/enable")
            locked = await in_thread(
                live.ok, "POST", f"{slot_path}/lock", lock_body("k-1", 60), key="public"
            )
            await in_thread(
                live.ok, "POST", f"{slot_path}/unlock", {"lock_key": "k-1"}, key="public"
            )
            await in_thread(
                live.ok, "POST", f"{slot_path}/lock", lock_body("k-1", 60), key="public"
            )
            booking = await in_thread(
                live.ok,
                "POST",
                "/bookings",
                {"slot_id": slot["id"], "lock_key": "k-1", "metadata": {"who": "Ann"}},
            )
            await in_thread(live.ok, "POST", f"/bookings/{booking['id']}/cancel")
            await in_thread(live.ok, "DELETE", f"/bookings/{booking['id']}")
            shown = await in_thread(live.ok, "GET", slot_path)
            await in_thread(live.ok, "DELETE", slot_path)
            events = await reader.wait_for(11)
        assert [event.type for event in events] == [
            "slot.created", "slot.updated", "slot.updated", "slot.updated", "slot.locked",
            "slot.unlocked", "slot.locked", "slot.booked", "slot.released", "slot.released",
            "slot.deleted",
        ]  # fmt: skip
        assert events[0].data == {"slot": slot}
        assert events[4].data["slot"]["locked_until"] == locked["locked_until"]
        assert events[4].data["slot"]["available"] is False
        assert events[7].data["slot"]["locked_until"] is None  # the booking consumed the lock
        assert events[7].data["slot"]["num_active_bookings"] == 1
        assert {**events[9].data["slot"], "updated_at": None} == {**shown, "updated_at": None}
        assert events[10].data == {"slot_id": slot["id"]}
        ids = [event.id for event in events]
        assert all(ids)
        assert len(set(ids)) == len(ids)

    run(body)


def test_no_secret_reaches_an_event(live: LiveApi) -> None:
    """Lock keys, their hashes, the environment and booking metadata never appear in a stream."""
    resource_id = new_resource(live)
    slot = new_slot(live, resource_id)

    async def body() -> None:
        async with stream(live, resource_id) as reader:
            await in_thread(
                live.ok,
                "POST",
                f"/slots/{slot['id']}/lock",
                lock_body("very-secret-key", 60),
                key="public",
            )
            await in_thread(
                live.ok, "POST", "/bookings",
                {
                    "slot_id": slot["id"],
                    "lock_key": "very-secret-key",
                    "metadata": {"phone": "555-0199"},
                },
            )  # fmt: skip
            events = await reader.wait_for(2)
        assert [event.type for event in events] == ["slot.locked", "slot.booked"]
        text = repr([event.data for event in events])
        for secret in ("very-secret-key", "555-0199", "environment", "lock_seq", "holder"):
            assert secret not in text

    run(body)


def test_list_then_watch_from_event_id_misses_nothing(live: LiveApi) -> None:
    """A stream resumed from a list's meta.event_id replays every later change, in order."""
    resource_id = new_resource(live)
    first = event_id(live, resource_id)  # a resource with no events has one too
    slot = new_slot(live, resource_id)
    after_create = event_id(live, resource_id)
    assert after_create != first
    live.ok("POST", f"/slots/{slot['id']}/lock", lock_body("k", 60), key="public")
    live.ok("POST", f"/slots/{slot['id']}/unlock", {"lock_key": "k"}, key="public")

    async def body() -> None:
        async with stream(live, resource_id, **{"last-event-id": first}) as reader:
            assert [e.type for e in await reader.wait_for(3)] == [
                "slot.created",
                "slot.locked",
                "slot.unlocked",
            ]
            await in_thread(
                live.ok, "POST", f"/slots/{slot['id']}/lock", lock_body("k", 60), key="public"
            )
            assert [e.type for e in await reader.wait_for(4)][3] == "slot.locked"
        async with stream(live, resource_id, query=f"?last_event_id={after_create}") as reader:
            assert [e.type for e in await reader.wait_for(3)] == [
                "slot.locked",
                "slot.unlocked",
                "slot.locked",
            ]

    run(body)


def test_a_stream_without_position_starts_with_later_changes(live: LiveApi) -> None:
    """A stream opened without Last-Event-ID sends only what changes after it opened."""
    resource_id = new_resource(live)
    new_slot(live, resource_id)

    async def body() -> None:
        async with stream(live, resource_id) as reader:
            await asyncio.sleep(0.3)
            assert reader.events == []
            await in_thread(new_slot, live, resource_id, 30)
            assert [e.type for e in await reader.wait_for(1)] == ["slot.created"]

    run(body)


@pytest.mark.parametrize("position", ["99999999999999-0", "not-an-id", "1-0"])
def test_an_id_never_issued_gets_reset(live: LiveApi, position: str) -> None:
    """An id this stream never issued gets one `reset` event, then the live changes."""
    resource_id = new_resource(live)
    new_slot(live, resource_id)

    async def body() -> None:
        async with stream(live, resource_id, **{"last-event-id": position}) as reader:
            (reset,) = await reader.wait_for(1)
            assert (reset.type, reset.data) == ("reset", {})
            assert reset.id == event_id(live, resource_id)
            await in_thread(new_slot, live, resource_id, 30)
            assert [e.type for e in await reader.wait_for(2)] == ["reset", "slot.created"]

    run(body)


def test_a_position_past_retention_gets_reset(live: LiveApi, redis_for_events: RedisServer) -> None:
    """Once the events after a position are trimmed away, resuming from it gets `reset`."""
    resource_id = new_resource(live)
    new_slot(live, resource_id)
    old = event_id(live, resource_id)
    new_slot(live, resource_id, 30)
    last_trimmed = event_id(live, resource_id)
    new_slot(live, resource_id, 36)
    newest = event_id(live, resource_id)
    keys = redis_for_events.client().keys("sl:*:events")
    (key,) = [k for k in keys if redis_for_events.client().xrange(k, newest, newest)]
    redis_for_events.client().xtrim(
        key, minid=newest, approximate=False
    )  # as the 10,000/1 h retention would

    async def body() -> None:
        async with stream(live, resource_id, **{"last-event-id": old}) as reader:
            assert [e.type for e in await reader.wait_for(1)] == ["reset"]
        async with stream(live, resource_id, **{"last-event-id": last_trimmed}) as reader:
            assert [e.type for e in await reader.wait_for(1)] == ["reset"]
        async with stream(live, resource_id, **{"last-event-id": newest}) as reader:
            await asyncio.sleep(0.3)
            assert reader.events == []  # still kept: nothing after it was lost, no reset

    run(body)


def test_concurrent_writers_each_change_exactly_once_in_order(live: LiveApi) -> None:
    """20 writers locking and unlocking at once: every change is one event, in id order per slot."""
    resource_id = new_resource(live)
    slots = [new_slot(live, resource_id, hours_ahead=24 + n) for n in range(WRITERS)]
    rounds = 3

    async def writer(session: aiohttp.ClientSession, slot_id: str) -> int:
        changes = 0
        for n in range(rounds):
            for action, payload in (
                ("lock", lock_body(f"w{slot_id}{n}", 60)),
                ("unlock", {"lock_key": f"w{slot_id}{n}"}),
            ):
                url = f"{live.service.url}/slots/{slot_id}/{action}"
                async with session.post(
                    url, json=payload, headers=live.headers("public")
                ) as answer:
                    assert answer.status == 200
                    changes += 1
        return changes

    async def body() -> None:
        async with stream(live, resource_id) as reader, aiohttp.ClientSession() as session:
            made = await asyncio.gather(*(writer(session, slot["id"]) for slot in slots))
            events = await reader.wait_for(sum(made), timeout_s=10)
            await asyncio.sleep(0.3)
            assert len(reader.events) == sum(made) == WRITERS * rounds * 2
        orders = [tuple(map(int, str(event.id).split("-"))) for event in events]
        assert orders == sorted(orders)
        assert len(set(orders)) == len(orders)
        for slot in slots:
            mine = [e.type for e in events if e.data["slot"]["id"] == slot["id"]]
            assert mine == ["slot.locked", "slot.unlocked"] * rounds

    run(body)


def test_lock_end_is_an_event_while_watched(live: LiveApi) -> None:
    """A lock that runs out shows as slot.unlocked within a second of its lock_until."""
    resource_id = new_resource(live)
    slot = new_slot(live, resource_id)

    async def body() -> None:
        async with stream(live, resource_id) as reader:
            await in_thread(
                live.ok, "POST", f"/slots/{slot['id']}/lock", lock_body("k", 1), key="public"
            )
            ends_at = time.monotonic() + 1
            events = await reader.wait_for(2, timeout_s=4)
        assert [e.type for e in events] == ["slot.locked", "slot.unlocked"]
        assert events[1].at_s - ends_at < 1.0
        assert events[1].data["slot"]["locked_until"] is None

    run(body)


def test_lock_end_while_nobody_watched_is_replayed(live: LiveApi) -> None:
    """A lock that ran out with no stream open is in the replay of a stream resumed later."""
    resource_id = new_resource(live)
    slot = new_slot(live, resource_id)
    position = event_id(live, resource_id)
    live.ok("POST", f"/slots/{slot['id']}/lock", lock_body("k", 0.5), key="public")
    time.sleep(1.0)

    async def body() -> None:
        async with stream(live, resource_id, **{"last-event-id": position}) as reader:
            events = await reader.wait_for(2)
            await asyncio.sleep(0.5)
        assert [e.type for e in reader.events] == ["slot.locked", "slot.unlocked"]  # exactly once
        assert events[1].data["slot"]["available"] is True

    run(body)


def test_a_lock_retaken_after_its_end_keeps_the_end_event(live: LiveApi) -> None:
    """Lock, let it run out unwatched, lock again: the stream shows locked, unlocked, locked."""
    resource_id = new_resource(live)
    slot = new_slot(live, resource_id)
    position = event_id(live, resource_id)
    live.ok("POST", f"/slots/{slot['id']}/lock", lock_body("a", 0.3), key="public")
    time.sleep(0.6)
    live.ok("POST", f"/slots/{slot['id']}/lock", lock_body("b", 60), key="public")

    async def body() -> None:
        async with stream(live, resource_id, **{"last-event-id": position}) as reader:
            await reader.wait_for(3)
            await asyncio.sleep(0.3)
        assert reader.types() == ["slot.locked", "slot.unlocked", "slot.locked"]

    run(body)


def test_resource_deleted_ends_the_stream(live: LiveApi) -> None:
    """Deleting the resource sends resource.deleted, then the stream ends."""
    resource_id = new_resource(live)

    async def body() -> None:
        async with stream(live, resource_id) as reader:
            await in_thread(live.ok, "DELETE", f"/resources/{resource_id}")
            events = await reader.wait_for(1)
            await asyncio.wait_for(reader.ended.wait(), 3)
        assert [(e.type, e.data) for e in events] == [
            ("resource.deleted", {"resource_id": resource_id})
        ]

    run(body)


def test_auth_by_header_or_public_query_key(live: LiveApi, service: LiveService) -> None:
    """A public key may come as ?key=, a secret one there is 401 E015, and no key is logged."""
    resource_id = new_resource(live)

    async def status_of(query: str, headers: dict[str, str]) -> tuple[int, str]:
        url = f"{live.service.url}/resources/{resource_id}/events{query}"
        async with aiohttp.ClientSession() as session:
            reader = await EventReader.open(session, url, headers)
            status = reader.response.status
            text = "" if status == 200 else await reader.response.text()
            await reader.close()
        return status, text

    async def body() -> None:
        assert (await status_of(f"?key={live.pair.public_key}", {}))[0] == 200
        assert (await status_of("", live.headers("secret")))[0] == 200
        status, text = await status_of(f"?key={live.pair.secret_key}", {})
        assert (status, '"E015"' in text) == (401, True)
        assert (await status_of("", {}))[0] == 401
        assert (await status_of("?key=nope", {}))[0] == 401
        url = f"{live.service.url}/resources/{'0' * 8}-0000-4000-8000-{'0' * 12}/events"
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, headers=live.headers()) as gone,
        ):
            assert (gone.status, (await gone.json())["error"]["code"]) == (404, "E052")

    run(body)
    assert wait_for(lambda: "/events" in service.log(), timeout_s=3)  # flushed within 0.25 s
    log = service.log()
    assert live.pair.public_key not in log
    assert live.pair.secret_key not in log


def test_cors_headers_on_the_stream(live: LiveApi) -> None:
    """A browser page of another origin may read the stream (CORS headers on its answer)."""
    resource_id = new_resource(live)

    async def body() -> None:
        async with stream(live, resource_id, origin="https://shop.example") as reader:
            assert reader.response.headers.get("access-control-allow-origin") is not None

    run(body)


@pytest.mark.slow
def test_an_idle_stream_gets_a_ping_every_15_seconds(live: LiveApi) -> None:
    """With nothing to send, a `: ping` comment arrives within 15 s and the stream stays open."""
    resource_id = new_resource(live)

    async def body() -> None:
        async with stream(live, resource_id) as reader:
            await asyncio.sleep(16)
            assert reader.comments == [": ping"]
            assert not reader.ended.is_set()

    run(body)


def test_shutdown_ends_every_stream(redis_for_events: RedisServer, tmp_path: Any) -> None:
    """SIGTERM ends the open streams at once, so the pod stops and its clients resume elsewhere."""
    pod = LiveService(tmp_path / "slotlock.log", REDIS_URL=redis_for_events.url)
    pod.start()
    client = LiveApi(pod, create_keys(redis_for_events.url))
    try:
        resource_id = new_resource(client)

        async def body() -> None:
            async with stream(client, resource_id) as first, stream(client, resource_id) as second:
                assert first.response.status == second.response.status == 200
                started = time.monotonic()
                await asyncio.to_thread(pod.stop)
                await asyncio.wait_for(first.ended.wait(), 2)
                await asyncio.wait_for(second.ended.wait(), 2)
                assert time.monotonic() - started < 4  # well before the 5 s graceful timeout

        run(body)
    finally:
        client.close()
        pod.stop()


def test_a_reschedule_is_released_on_one_slot_and_booked_on_the_other(live: LiveApi) -> None:
    """Moving a booking shows slot.released on its old slot and slot.booked on the new one."""
    home, away = new_resource(live), new_resource(live)
    source = new_slot(live, home)
    same_resource_target = new_slot(live, home, 30)
    other_resource_target = new_slot(live, away)
    booking = live.ok("POST", "/bookings", {"slot_id": source["id"]})

    async def body() -> None:
        async with stream(live, home) as at_home, stream(live, away) as at_away:
            path = f"/bookings/{booking['id']}/reschedule"
            await in_thread(live.ok, "POST", path, {"target_slot_id": same_resource_target["id"]})
            await in_thread(live.ok, "POST", path, {"target_slot_id": other_resource_target["id"]})
            home_events = await at_home.wait_for(3)
            away_events = await at_away.wait_for(1)
        assert [(e.type, e.data["slot"]["id"]) for e in home_events] == [
            ("slot.released", source["id"]),
            ("slot.booked", same_resource_target["id"]),
            ("slot.released", same_resource_target["id"]),
        ]
        assert home_events[2].data["slot"]["num_active_bookings"] == 0
        assert [(e.type, e.data["slot"]["id"]) for e in away_events] == [
            ("slot.booked", other_resource_target["id"])
        ]
        assert away_events[0].data["slot"]["num_active_bookings"] == 1

    run(body)


def test_two_pods_watching_write_a_lock_end_once(
    live: LiveApi, redis_for_events: RedisServer, tmp_path: Any
) -> None:
    """With watchers on two pods, both sweep the resource, and its lock end is one event."""
    other_pod = LiveService(tmp_path / "pod-2.log", REDIS_URL=redis_for_events.url)
    other_pod.start()
    other = LiveApi(other_pod, live.pair)
    try:
        resource_id = new_resource(live)
        slots = [new_slot(live, resource_id, 24 + n) for n in range(5)]

        async def body() -> None:
            async with stream(live, resource_id) as here, stream(other, resource_id) as there:
                for slot in slots:
                    path = f"/slots/{slot['id']}/lock"
                    await in_thread(live.ok, "POST", path, lock_body(slot["id"], 0.6), key="public")
                await here.wait_for(10, timeout_s=4)
                await there.wait_for(10, timeout_s=4)
                await asyncio.sleep(0.5)
            for reader in (here, there):
                assert sorted(reader.types()) == ["slot.locked"] * 5 + ["slot.unlocked"] * 5
            assert [e.id for e in here.events] == [e.id for e in there.events]

        run(body)
    finally:
        other.close()
        other_pod.stop()


def hold_body(lock_key: str, seconds: float, quantity: int) -> dict[str, Any]:
    """A partial hold of `quantity` places for `seconds` from now."""
    return {**lock_body(lock_key, seconds), "quantity": quantity}


def test_partial_holds_show_as_locked_and_unlocked_with_their_places(live: LiveApi) -> None:
    """A hold taken, resized, booked from and given up: each is one event with the places held."""
    resource_id = new_resource(live)
    slot = new_slot(live, resource_id, capacity=4)
    lock_path = f"/slots/{slot['id']}/lock"

    async def body() -> None:
        async with stream(live, resource_id) as reader:
            await in_thread(live.ok, "POST", lock_path, hold_body("a", 60, 2), key="public")
            await in_thread(live.ok, "POST", lock_path, hold_body("a", 60, 3), key="public")
            await in_thread(
                live.ok, "POST", "/bookings", {"slot_id": slot["id"], "lock_key": "a"}, key="public"
            )
            await in_thread(
                live.ok, "POST", f"/slots/{slot['id']}/unlock", {"lock_key": "a"}, key="public"
            )
            events = await reader.wait_for(4)
        assert [(e.type, e.data["slot"]["num_held_places"]) for e in events] == [
            ("slot.locked", 2),
            ("slot.locked", 3),
            ("slot.booked", 2),
            ("slot.unlocked", 0),
        ]
        assert events[2].data["slot"]["num_active_bookings"] == 1
        assert events[3].data["slot"]["num_free_places"] == 3

    run(body)


def test_a_hold_that_runs_out_is_an_event_watched_or_not(live: LiveApi) -> None:
    """Holds that end by themselves are slot.unlocked, live within a second and in a replay."""
    resource_id = new_resource(live)
    slot = new_slot(live, resource_id, capacity=4)
    lock_path = f"/slots/{slot['id']}/lock"
    position = event_id(live, resource_id)
    live.ok("POST", lock_path, hold_body("unwatched", 0.4, 1), key="public")
    time.sleep(0.8)

    async def body() -> None:
        async with stream(live, resource_id, **{"last-event-id": position}) as reader:
            await reader.wait_for(2)
            await in_thread(live.ok, "POST", lock_path, hold_body("watched", 1, 2), key="public")
            ends_at = time.monotonic() + 1
            events = await reader.wait_for(4, timeout_s=4)
            await asyncio.sleep(0.4)
        assert reader.types() == ["slot.locked", "slot.unlocked", "slot.locked", "slot.unlocked"]
        assert [e.data["slot"]["num_held_places"] for e in events] == [1, 0, 2, 0]
        assert events[3].at_s - ends_at < 1.0

    run(body)


CHANGES_AFTER_A_LOCK_END: dict[str, tuple[str, Callable[[LiveApi, Any, Any], Any]]] = {
    "slot patched": ("slot.updated", lambda live, slot, booking: live.ok(
        "PATCH", f"/slots/{slot['id']}", {"metadata": {"room": "b"}})),
    "slot disabled": ("slot.updated", lambda live, slot, booking: live.ok(
        "POST", f"/slots/{slot['id']}/disable")),
    "booking cancelled": ("slot.released", lambda live, slot, booking: live.ok(
        "POST", f"/bookings/{booking['id']}/cancel", key="public")),
    "booking deleted": ("slot.released", lambda live, slot, booking: live.ok(
        "DELETE", f"/bookings/{booking['id']}")),
}  # fmt: skip


@pytest.mark.parametrize("change", sorted(CHANGES_AFTER_A_LOCK_END))
def test_a_lock_end_nobody_swept_comes_before_the_next_change(live: LiveApi, change: str) -> None:
    """A change right after an unwatched lock ran out shows slot.unlocked first, as it happened."""
    expected, make_change = CHANGES_AFTER_A_LOCK_END[change]
    resource_id = new_resource(live)
    slot = new_slot(live, resource_id, capacity=2)
    booking = live.ok("POST", "/bookings", {"slot_id": slot["id"]}, key="public")
    position = event_id(live, resource_id)
    live.ok("POST", f"/slots/{slot['id']}/lock", lock_body("k", 0.3), key="public")
    time.sleep(0.6)  # the lock ends; no stream is open, so nothing sweeps it
    make_change(live, slot, booking)

    async def body() -> None:
        async with stream(live, resource_id, **{"last-event-id": position}) as reader:
            await reader.wait_for(3)
            await asyncio.sleep(0.3)
        assert reader.types() == ["slot.locked", "slot.unlocked", expected]

    run(body)
