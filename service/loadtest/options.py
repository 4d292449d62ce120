"""What a load run is asked to do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SCENARIOS = ("checkout", "hot-lock", "group")
GROUP_CAPACITY = 20  # a class: the group scenario's places per slot unless --capacity says


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """Every knob of `slotlock loadtest`; the keys are kept out of reports and logs."""

    url: str
    secret_key: str
    public_key: str | None = None  # None: frontends' requests use the secret key too
    scenario: str = "checkout"
    users: int = 50
    duration_s: float = 30.0
    slots: int = 1000
    capacity: int | None = None  # None: 1, or GROUP_CAPACITY for the group scenario
    think_ms: float = 200.0
    book_ratio: float = 0.7
    cancel_ratio: float = 0.5
    lock_hold_s: int = 180
    seed: int = 0
    client: str = "aiohttp"
    json_path: Path | None = Path("loadtest-report.json")
    progress: bool = True
    timeout_s: float = 10.0  # per request; a run ends at most this long after its duration

    @property
    def places(self) -> int:
        """Places per slot."""
        if self.capacity is not None:
            return self.capacity
        return GROUP_CAPACITY if self.scenario == "group" else 1

    @property
    def frontend_key(self) -> str:
        """The key virtual users send: the public key if given, else the secret key."""
        return self.public_key or self.secret_key

    def described(self) -> dict[str, object]:
        """The options as a report shows them: no keys, only whether a public key was used."""
        return {
            "url": self.url,
            "scenario": self.scenario,
            "users": self.users,
            "duration_s": self.duration_s,
            "slots": self.slots,
            "capacity": self.places,
            "think_ms": self.think_ms,
            "book_ratio": self.book_ratio,
            "cancel_ratio": self.cancel_ratio,
            "lock_hold_s": self.lock_hold_s,
            "seed": self.seed,
            "client": self.client,
            "frontend_key": "public" if self.public_key else "secret",
        }
