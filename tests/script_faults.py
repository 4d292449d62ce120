"""Script replies chosen by a test, injected where the service meets Redis: its Transport.

The stores, the batcher and the scripts' typed calls run unchanged above it (several of
them are compiled, service/native.py, and compiled objects cannot have their methods
replaced), so what a test sees is what a real reply would have caused.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from service.store.transport import Command, ScriptCall, Transport


def evalsha_parts(command: Command) -> tuple[str, list[Any], list[Any]]:
    """The SHA, KEYS and ARGV of one EVALSHA command."""
    _, sha, key_count, *rest = command
    return sha, list(rest[:key_count]), list(rest[key_count:])


class Canned(Transport):
    """Answers every command with one reply (no Redis) and keeps the last EVALSHA it got."""

    def __init__(self, reply: Any) -> None:
        self.reply = reply
        self.sent: tuple[list[Any], list[Any]] | None = None  # the last call's KEYS, ARGV

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """The canned reply to each command, its KEYS and ARGV kept."""
        for command in commands:
            _, keys, args = evalsha_parts(command)
            self.sent = (keys, args)
        return [self.reply for _ in commands]

    async def load_script(self, source: str) -> None:
        """Nothing to load: no script runs."""

    async def aclose(self) -> None:
        """Nothing to close."""


class ScriptFaults(Transport):
    """The app's own transport, but for the scripts told to answer otherwise.

    `answer(sha, reply)` makes every call of that script get `reply` without reaching
    Redis (an exception instance is that call's error, as an error reply would be);
    `calls[sha]` counts them. Every other call goes to Redis through `inner`, on its
    fast path while no call of a batch is answered here.
    """

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.answers: dict[str, Any] = {}
        self.calls: Counter[str] = Counter()

    def answer(self, sha: str, reply: Any) -> None:
        """From now on, calls of the script with this SHA get `reply`."""
        self.answers[sha] = reply

    def clear(self) -> None:
        """Every script reaches Redis again."""
        self.answers.clear()

    def write_scripts(self, calls: Sequence[ScriptCall]) -> Any:
        """The inner fast path, unless a call of the batch is answered here (then None:
        the batcher takes run_scripts, which comes through `pipeline`)."""
        if any(call.script.sha in self.answers for call in calls):
            return None
        return self.inner.write_scripts(calls)

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Answered commands get their reply; the rest go to Redis, in one pipeline."""
        answered: dict[int, Any] = {}
        for index, command in enumerate(commands):
            if command[0] == "EVALSHA" and command[1] in self.answers:
                answered[index] = self.answers[command[1]]
                self.calls[command[1]] += 1
        passed = [command for index, command in enumerate(commands) if index not in answered]
        forwarded = iter(await self.inner.pipeline(passed) if passed else [])
        return [
            answered[index] if index in answered else next(forwarded)
            for index in range(len(commands))
        ]

    async def load_script(self, source: str) -> None:
        """SCRIPT LOAD through the inner transport."""
        await self.inner.load_script(source)

    async def aclose(self) -> None:
        """Close the inner transport's connection."""
        await self.inner.aclose()
