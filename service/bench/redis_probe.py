"""What Redis says about slotlock: commands run (INFO commandstats), commands each request
sent (MONITOR), and the memory one slot owns (MEMORY USAGE).

INFO commandstats also counts the commands a Lua script runs inside Redis, so
it tells how much work Redis did, not how many round trips a request cost.
MONITOR tells them apart (a script's commands come from `lua`), so calls per
request are counted there, over a short run of sequential requests. Commands
that no single request owns are left out: background jobs (rate-limit flushes,
the reschedule healer) and API-key lookups, which the service caches for
SLOTLOCK_KEY_CACHE_S (2 s) per key and worker, i.e. at most one per key every
2 s, whatever the request rate.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from typing import Any

import msgspec
import redis

from service import keyspace

MARK = "bench:"  # ECHO bench:<segment> starts a segment of the MONITOR stream
END = "end"
# Keys of commands no single request owns: rate-limit flushes, the reschedule healer,
# and the API-key lookups made once per cache period.
AMORTISED_KEYS = ("{rl:", "{reschedules}", "{keys}")


def command_calls(client: redis.Redis) -> dict[str, int]:
    """Calls so far per command, from INFO commandstats (script-internal calls included)."""
    stats: dict[str, Any] = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()}


def calls_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Calls made between two command_calls snapshots, by command."""
    made = {name: calls - before.get(name, 0) for name, calls in after.items()}
    return {name: calls for name, calls in sorted(made.items()) if calls > 0}


class MonitorCapture:
    """Every command Redis runs, read from MONITOR in a thread until the END marker."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._stop = threading.Event()
        self._attached = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self.commands: list[tuple[str, str]] = []  # (client type, command text)

    def start(self, timeout_s: float = 10.0) -> None:
        """Start listening; returns once MONITOR is seen to receive commands."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._attached.wait(0.05):
            self._client.echo(f"{MARK}attach")
            if time.monotonic() > deadline:
                raise RuntimeError("MONITOR saw nothing")

    def mark(self, segment: str) -> None:
        """Start a new segment of the stream."""
        self._client.echo(f"{MARK}{segment}")

    def finish(self, timeout_s: float = 10.0) -> None:
        """Send the END marker and wait for the listener to reach it."""
        self.mark(END)
        self._thread.join(timeout_s)
        self._stop.set()

    def _listen(self) -> None:
        with self._client.monitor() as monitor:  # type: ignore[no-untyped-call]
            while not self._stop.is_set():
                seen = monitor.next_command()
                if seen is None:
                    continue
                self.commands.append((seen["client_type"], seen["command"]))
                self._attached.set()
                if seen["command"] == f"ECHO {MARK}{END}":
                    return


def segment_calls(commands: list[tuple[str, str]]) -> dict[str, Counter[str]]:
    """Client commands per segment, by name: no script internals, markers or amortised ones."""
    segments: dict[str, Counter[str]] = {}
    current: Counter[str] | None = None
    for client_type, text in commands:
        if text.startswith(f"ECHO {MARK}"):
            current = segments.setdefault(text.removeprefix(f"ECHO {MARK}"), Counter())
        elif current is not None and client_type != "lua" and not _amortised(text):
            current[text.split(" ", 1)[0].upper()] += 1
    return segments


def _amortised(text: str) -> bool:
    return any(marker in text for marker in AMORTISED_KEYS)


class SlotMemory(msgspec.Struct, kw_only=True):
    """Bytes one slot owns in Redis (MEMORY USAGE ... SAMPLES 0, shares rounded up)."""

    slot_hash: int  # sl:{T}:slot:<id>
    index_entries: int  # its share of sl:{T}:slots
    resource_share: int  # its share of sl:{T}:resource
    idle: int  # the three above
    lock_string: int  # sl:{T}:lock:<id>, while locked
    holds_zset: int  # sl:{T}:holds:<holder>, while its lock_key holds this one slot
    lock_deadline: int = 0  # its entry in sl:{T}:lock-ends, with its share of the set
    locked: int  # idle + lock string + holds zset + lock deadline
    held_zset: int = 0  # sl:{T}:held:<id>, while one partial hold is on the slot
    held: int = 0  # idle + held zset + holds zset: a slot with one partial hold


def slot_memory(
    client: redis.Redis,
    slot_id: str,
    slot_count: int,
    holder: str,
    hold_holder: str = "",
    held_slot_id: str = "",
) -> SlotMemory:
    """The memory of a slot that `holder` (its lock_key's hash) has locked right now, and of
    `held_slot_id` (if given), on which `hold_holder` holds places (and nothing else)."""

    def usage(key: str, share: int = 1) -> int:
        return math.ceil(int(client.memory_usage(key, samples=0) or 0) / share)

    slot_hash = usage(keyspace.slot(slot_id))
    index_entries = usage(keyspace.resource_slots(slot_id), slot_count)
    resource_share = usage(keyspace.resource(slot_id), slot_count)
    idle = slot_hash + index_entries + resource_share
    lock_string = usage(keyspace.lock(slot_id))
    holds_zset = usage(keyspace.holds(slot_id, holder))
    lock_deadline = _deadline_share(client, keyspace.lock_ends(slot_id), slot_id, slot_count)
    held_zset = usage(keyspace.held(held_slot_id)) if held_slot_id else 0
    hold_holds_zset = usage(keyspace.holds(held_slot_id, hold_holder)) if held_slot_id else 0
    return SlotMemory(
        slot_hash=slot_hash,
        index_entries=index_entries,
        resource_share=resource_share,
        idle=idle,
        lock_string=lock_string,
        holds_zset=holds_zset,
        lock_deadline=lock_deadline,
        locked=idle + lock_string + holds_zset + lock_deadline,
        held_zset=held_zset,
        held=idle + held_zset + hold_holds_zset + lock_deadline if held_slot_id else 0,
    )


def _deadline_share(client: redis.Redis, key: str, slot_id: str, slot_count: int) -> int:
    """A locked slot's entry in its resource's lock ends, and its share of the set.

    sl:{T}:lock-ends serves both the events' expiry sweep and the lists' `available`;
    a slot not in `key` owns nothing of it. The set is the resource's, like its hash:
    its fixed overhead is shared by the resource's slots (as `resource_share` is), its
    entries by the slots locked. An
    entry costs what ten more members of the same size add, over ten (allocations
    grow in steps, so one member may add nothing); they are removed again.
    """
    if client.zscore(key, slot_id) is None:
        return 0
    entries = int(client.zcard(key))
    total = int(client.memory_usage(key, samples=0) or 0)
    probes = {f"{at:0{len(slot_id)}d}": 0 for at in range(_PROBE_ENTRIES)}
    client.zadd(key, probes)
    grown = int(client.memory_usage(key, samples=0) or 0)
    client.zrem(key, *probes)
    entry = math.ceil((grown - total) / _PROBE_ENTRIES)
    overhead = max(0, total - entry * entries)
    return entry + math.ceil(overhead / slot_count)


_PROBE_ENTRIES = 10
