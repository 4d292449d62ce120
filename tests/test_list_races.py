"""Lists under load, over real HTTP: pages agree with themselves while everything changes.

50 clients lock (for one or two seconds, so Redis ends many locks by itself), unlock,
book and cancel on the slots of two resources while one client lists without pause.
Each list of one resource is read in one atomic script, so each answer must be the
state of one instant: every slot in it passes the filter as shown, in order, without
repeats, and, as one page of 50 covers every slot, as many as its total says.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from tests.test_booking_races import CONCURRENCY, Client, Service, service

__all__ = ["service"]  # the module's running service, shared with the booking races

WORKERS = 50
ROUNDS = 12  # operations per worker
SLOTS_PER_RESOURCE = 12


async def build(client: Client) -> list[tuple[str, list[str]]]:
    """Two published resources of hourly slots (capacity 1 or 2)."""
    made = []
    for _ in range(2):
        resource = await client.ok("POST", "/resources", {"name": "Busy"})
        await client.ok("POST", f"/resources/{resource['id']}/publish")
        start = datetime.now(UTC) + timedelta(days=1)
        specs = [
            {
                "start_date": (start + timedelta(hours=hour)).isoformat(),
                "end_date": (start + timedelta(hours=hour, minutes=30)).isoformat(),
                "capacity": 1 + hour % 2,
            }
            for hour in range(SLOTS_PER_RESOURCE)
        ]
        slots = await client.ok("POST", "/slots", {"resource_id": resource["id"], "slots": specs})
        made.append((resource["id"], [slot["id"] for slot in slots]))
    return made


async def churn(client: Client, slot_ids: list[str], seed: int) -> list[int]:
    """One client's locks, unlocks, bookings and cancellations; returns the statuses seen."""
    chance = random.Random(seed)
    statuses = []
    for _ in range(ROUNDS):
        slot_id, key = chance.choice(slot_ids), f"key-{seed}"
        until = (datetime.now(UTC) + timedelta(seconds=chance.choice([1, 2]))).isoformat()
        lock = await client.call(
            "POST", f"/slots/{slot_id}/lock", {"lock_key": key, "lock_until": until}, key="secret"
        )
        statuses.append(lock.status)
        action = chance.choice(["book", "unlock", "leave"])
        if action == "book":
            booked = await client.book(slot_id, key)
            statuses.append(booked.status)
            if booked.status == 200 and chance.random() < 0.6:
                booking_id = booked.body["data"]["id"]
                cancel = await client.call("POST", f"/bookings/{booking_id}/cancel")
                statuses.append(cancel.status)
        elif action == "unlock":
            unlock = await client.call(
                "POST", f"/slots/{slot_id}/unlock", {"lock_key": key}, key="secret"
            )
            statuses.append(unlock.status)
    return statuses


def check_answer(body: dict[str, Any], params: dict[str, Any]) -> None:
    """One list answer is one instant's state: filter, order, no repeats, total."""
    assert body["success"], body
    slots = body["data"]
    if "available" in params:
        assert all(slot["available"] == (params["available"] == "true") for slot in slots)
    if "resource_id" in params:
        assert all(slot["resource_id"] == params["resource_id"] for slot in slots)
    order = [(slot["start_date"], slot["id"]) for slot in slots]
    assert order == sorted(order)
    assert len({slot["id"] for slot in slots}) == len(slots)
    assert body["meta"]["total"] == len(slots)  # a page of 50 holds every match


async def list_until(client: Client, done: asyncio.Event, resources: list[str]) -> int:
    """List without pause, with every filter, until the others are done; answers checked."""
    filters: list[dict[str, Any]] = [
        {"resource_id": resource_id, "available": available}
        for resource_id in resources
        for available in ("true", "false")
    ]
    filters.append({"available": "true"})  # both resources, merged
    answered = 0
    while not done.is_set():
        params = filters[answered % len(filters)]
        query = "&".join(f"{name}={value}" for name, value in {**params, "limit": 50}.items())
        reply = await client.call("GET", f"/slots?{query}")
        assert reply.status == 200, reply.body
        if "resource_id" in params:  # one resource: one atomic read
            check_answer(reply.body, params)
        answered += 1
    return answered


def test_lists_stay_consistent_under_churn(service: Service) -> None:
    """While 50 clients change slots and locks end by themselves: no 5xx, every answer whole."""

    async def main() -> tuple[list[int], int]:
        connector = aiohttp.TCPConnector(limit=CONCURRENCY + 20)
        async with aiohttp.ClientSession(connector=connector) as session:
            client = Client(service, session)
            made = await build(client)
            all_slots = [slot_id for _, slot_ids in made for slot_id in slot_ids]
            done = asyncio.Event()

            async def everyone_churns() -> list[list[int]]:
                results = await asyncio.gather(
                    *(churn(client, all_slots, seed) for seed in range(WORKERS))
                )
                await asyncio.sleep(2.5)  # the last locks end by themselves, still listed
                done.set()
                return results

            results, answered = await asyncio.gather(
                everyone_churns(), list_until(client, done, [r for r, _ in made])
            )
            return [status for statuses in results for status in statuses], answered

    statuses, answered = asyncio.run(main())
    assert not [status for status in statuses if status >= 500]
    assert 200 in statuses
    assert answered > 20
