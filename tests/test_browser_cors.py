"""CORS in a real browser: a page on another origin locks and unlocks with fetch.

Headless Chromium (Debian's `chromium`, driven by Playwright; never downloaded)
loads a page from one local origin, and the page calls a live `slotlock serve`
on another port with the public key, as a booking page would. What the browser
lets the page read is what the tests check.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from service.store.api_keys import KeyPair
from tests.live import LiveApi, LiveService, create_keys, lock_body
from tests.redis_servers import RedisServer, free_port

OTHER_ORIGIN = "http://shop.example"

# The booking page: one helper that calls the API and reports what the browser let it
# read, or the error fetch raised when the browser refused the answer.
PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>booking page</title></head><body>
<script>
async function callApi(base, method, path, key, body, extraHeaders) {
  const headers = Object.assign({}, extraHeaders || {});
  if (key) headers["Authorization"] = "Bearer " + key;
  if (body !== null) headers["Content-Type"] = "application/json";
  try {
    const response = await fetch(base + path, {
      method: method,
      headers: headers,
      body: body === null ? undefined : JSON.stringify(body),
    });
    return {
      status: response.status,
      body: await response.json(),
      retryAfter: response.headers.get("Retry-After"),
      requestId: response.headers.get("X-Request-ID"),
    };
  } catch (error) {
    return {refused: String(error)};
  }
}
</script>
</body></html>
"""


class _PageHandler(BaseHTTPRequestHandler):
    """Serves PAGE at every path."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest's output is not the place."""


@dataclass(frozen=True)
class Live:
    """A redis-server, a key pair in it, and the page's origin."""

    redis: RedisServer
    pair: KeyPair
    page_origin: str


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A redis-server of the module's own and a page server on another port."""
    redis = RedisServer.start_new(tmp_path_factory.mktemp("browser-redis"))
    pages = ThreadingHTTPServer(("127.0.0.1", free_port()), _PageHandler)
    serving = threading.Thread(target=pages.serve_forever, daemon=True)
    serving.start()
    try:
        yield Live(redis, create_keys(redis.url), f"http://127.0.0.1:{pages.server_port}")
    finally:
        pages.shutdown()
        pages.server_close()
        redis.stop()


@pytest.fixture
def page(browser: Browser, live: Live) -> Iterator[Page]:
    """The booking page, loaded from its own origin."""
    opened = browser.new_page()
    opened.goto(live.page_origin + "/booking.html")
    yield opened
    opened.close()


@pytest.fixture
def service_for(live: Live, tmp_path: Path) -> Iterator[Any]:
    """Starts `slotlock serve` with the given SLOTLOCK_CORS_ORIGINS; stops each by pid."""
    started: list[tuple[LiveService, LiveApi]] = []

    def start(cors_origins: str) -> tuple[LiveService, LiveApi]:
        variables = {"REDIS_URL": live.redis.url}
        if cors_origins:
            variables["SLOTLOCK_CORS_ORIGINS"] = cors_origins
        service = LiveService(tmp_path / f"slotlock-{len(started)}.log", **variables)
        service.start()
        started.append((service, LiveApi(service, live.pair)))
        return started[-1]

    yield start
    for service, api in started:
        api.close()
        service.stop()


def call(page: Page, base: str, method: str, path: str, key: str, body: Any = None,
         headers: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    """What the page's fetch got back (or that the browser refused it)."""
    found: dict[str, Any] = page.evaluate(
        "([base, method, path, key, body, headers]) =>"
        " callApi(base, method, path, key, body, headers)",
        [base, method, path, key, body, headers or {}],
    )
    return found


@pytest.mark.parametrize(
    "cors_origins", ["", "{page},http://shop.example"], ids=["default-star", "listed"]
)
def test_a_page_on_another_origin_locks_and_unlocks(
    page: Page, live: Live, service_for: Any, cors_origins: str
) -> None:
    """From another origin, the page locks, is refused a second lock, reads headers, unlocks."""
    service, api = service_for(cors_origins.format(page=live.page_origin))
    slot = api.published_slot()
    lock_path, public = f"/slots/{slot['id']}/lock", live.pair.public_key

    locked = call(page, service.url, "POST", lock_path, public, lock_body("mine", 300),
                  {"X-Request-ID": "page-lock-1", "Idempotency-Key": slot["id"]})  # fmt: skip
    assert locked["status"] == 200, locked
    assert locked["body"]["data"]["locked_until"] is not None
    assert locked["body"]["data"]["available"] is False
    assert locked["body"]["meta"]["lock_token"] >= 1
    assert locked["requestId"] == "page-lock-1"  # exposed through CORS

    taken = call(page, service.url, "POST", lock_path, public, lock_body("theirs", 300))
    assert taken["status"] == 422
    assert taken["body"]["error"]["code"] == "E045"
    assert taken["retryAfter"] is not None  # exposed through CORS
    assert 1 <= int(taken["retryAfter"]) <= 300

    unlocked = call(page, service.url, "POST", f"/slots/{slot['id']}/unlock", public,
                    {"lock_key": "mine"})  # fmt: skip
    assert unlocked["status"] == 200
    assert unlocked["body"]["data"]["locked_until"] is None
    assert api.ok("GET", f"/slots/{slot['id']}")["available"] is True


def test_the_page_reads_errors_without_a_key(page: Page, live: Live, service_for: Any) -> None:
    """A 401 and a 404 reach the page too, with their envelope and request id."""
    service, _ = service_for("")
    missing_key = call(page, service.url, "GET", "/slots", "")
    assert (missing_key["status"], missing_key["body"]["error"]["code"]) == (401, "E056")
    assert missing_key["requestId"]
    no_route = call(page, service.url, "GET", "/nowhere", live.pair.public_key)
    assert (no_route["status"], no_route["body"]["error"]["code"]) == (404, "E002")


def test_an_origin_not_listed_is_refused_by_the_browser(
    page: Page, live: Live, service_for: Any
) -> None:
    """With SLOTLOCK_CORS_ORIGINS listing another origin, the browser keeps the page out."""
    service, api = service_for(OTHER_ORIGIN)
    slot = api.published_slot()
    lock_path = f"/slots/{slot['id']}/lock"
    refused = call(page, service.url, "POST", lock_path, live.pair.public_key,
                   lock_body("mine", 300))  # fmt: skip
    assert "refused" in refused, refused  # the preflight failed: the lock was never sent
    assert api.ok("GET", f"/slots/{slot['id']}")["locked_until"] is None
    # A simple request needs no preflight: it is answered, but the page may not read it.
    simple = page.evaluate(
        "(url) => fetch(url).then(r => 'read ' + r.status, e => 'refused ' + e)",
        service.url + "/healthz",
    )
    assert simple.startswith("refused"), simple
