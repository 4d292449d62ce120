"""The reference booking page (/demo/) in a real browser: two people see each other's picks live.

Headless Chromium (Debian's `chromium`, driven by Playwright with executable_path; never
downloaded) opens the page twice on one resource. Each step's deadline is the API's
promise: the other page shows a change within one second. When a step fails, both pages'
screenshots are saved beside the test's tmp_path and named in the failure.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.live import LiveApi, LiveService, create_keys
from tests.redis_servers import RedisServer

HOLD_S = 3


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """`slotlock serve` with SLOTLOCK_DEMO=1 on a redis-server of its own, and a key pair."""
    redis = RedisServer.start_new(tmp_path_factory.mktemp("demo-redis"))
    service = LiveService(
        tmp_path_factory.mktemp("demo") / "slotlock.log", REDIS_URL=redis.url, SLOTLOCK_DEMO="1"
    )
    try:
        service.start()
        api = LiveApi(service, create_keys(redis.url))
        yield api
        api.close()
    finally:
        service.stop()
        redis.stop()


def resource_with_slots(api: LiveApi, count: int = 3) -> tuple[str, list[str]]:
    """A published resource with `count` one-hour slots tomorrow."""
    resource = api.ok("POST", "/resources", {"name": "Demo room"})
    api.ok("POST", f"/resources/{resource['id']}/publish")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    slot_ids = []
    for n in range(count):
        begins = start + timedelta(hours=n)
        body = {
            "resource_id": resource["id"],
            "start_date": begins.isoformat(),
            "end_date": (begins + timedelta(hours=1)).isoformat(),
            "capacity": 1,
        }
        slot_ids.append(api.ok("POST", "/slots", body)["id"])
    return str(resource["id"]), slot_ids


def open_page(browser: Browser, api: LiveApi, resource_id: str) -> Page:
    """The booking page, connected to the resource with the public key."""
    page = browser.new_page()
    page.goto(f"{api.service.url}/demo/")
    page.fill("#key", api.pair.public_key)
    page.fill("#resource", resource_id)
    page.fill("#hold", str(HOLD_S))
    page.click("#connect")
    page.wait_for_selector("text=Live: changes show as they happen.", timeout=5000)
    return page


def row(slot_id: str, state: str) -> str:
    """The selector of a slot's row in a given state."""
    return f'.slot[data-slot-id="{slot_id}"][data-state="{state}"]'


def test_the_demo_page_is_off_by_default(tmp_path: Path) -> None:
    """Without SLOTLOCK_DEMO=1 there is no /demo/ route."""
    from service.settings import Settings

    assert Settings.from_env({}).demo is False
    assert Settings.from_env({"SLOTLOCK_DEMO": "1"}).demo is True


def test_two_pages_see_each_others_picks_within_a_second(
    browser: Browser, demo: LiveApi, tmp_path: Path
) -> None:
    """A picks (B shows it taken), A's pick runs out (B shows it free), A books (B shows booked)."""
    resource_id, slot_ids = resource_with_slots(demo)
    first, second = slot_ids[0], slot_ids[1]
    a, b = open_page(browser, demo, resource_id), open_page(browser, demo, resource_id)
    try:
        b.wait_for_selector(row(first, "free"), timeout=2000)

        a.click(f"{row(first, 'free')} >> text=Pick")
        a.wait_for_selector(row(first, "mine"), timeout=2000)
        b.wait_for_selector(row(first, "taken"), timeout=1000)
        lock_until_s = time.time() + HOLD_S  # at most this: the lock was asked for before

        b.wait_for_selector(row(first, "free"), timeout=(HOLD_S + 1) * 1000)
        assert time.time() <= lock_until_s + 1.0

        a.click(f"{row(second, 'free')} >> text=Pick")
        a.click(f"{row(second, 'mine')} >> text=Book")
        a.wait_for_selector(row(second, "booked"), timeout=2000)
        b.wait_for_selector(row(second, "booked"), timeout=1000)
        assert demo.ok("GET", f"/slots/{second}")["num_active_bookings"] == 1
    except Exception as failure:
        shots = [tmp_path / "page-a.png", tmp_path / "page-b.png"]
        a.screenshot(path=str(shots[0]), full_page=True)
        b.screenshot(path=str(shots[1]), full_page=True)
        raise AssertionError(f"{failure}\nscreenshots: {shots[0]} {shots[1]}") from failure
    finally:
        a.close()
        b.close()


def test_letting_go_frees_the_slot_on_the_other_page(browser: Browser, demo: LiveApi) -> None:
    """A lets its pick go and B shows the slot free again at once."""
    resource_id, (slot_id, *_) = resource_with_slots(demo, 1)
    a, b = open_page(browser, demo, resource_id), open_page(browser, demo, resource_id)
    try:
        a.click(f"{row(slot_id, 'free')} >> text=Pick")
        b.wait_for_selector(row(slot_id, "taken"), timeout=2000)
        a.click(f"{row(slot_id, 'mine')} >> text=Let go")
        b.wait_for_selector(row(slot_id, "free"), timeout=1000)
    finally:
        a.close()
        b.close()


def test_the_page_loads_nothing_from_elsewhere(browser: Browser, demo: LiveApi) -> None:
    """Every request the page makes goes to the service itself (no CDN)."""
    resource_id, _ = resource_with_slots(demo, 1)
    page = browser.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    try:
        page.goto(f"{demo.service.url}/demo/")
        page.fill("#key", demo.pair.public_key)
        page.fill("#resource", resource_id)
        page.click("#connect")
        page.wait_for_selector(".slot", timeout=5000)
    finally:
        page.close()
    assert requested
    assert all(url.startswith(demo.service.url) for url in requested)
