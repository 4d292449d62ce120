"""Authentication: Bearer keys, their scopes, and the environments they separate."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from service.auth import Authenticator
from service.services import Services
from service.store.api_keys import KeyRecord, KeyStore, hash_key
from tests.api import Api, error_of, slot_request_body

UNKNOWN_KEYS = ["sk_" + "0" * 64, "pk_" + "f" * 64, "sk_short", "hello", ""]


def revoke(api: Api, key: str) -> None:
    """Revoke `key` the way `slotlock keys revoke` does: find its records, retire them."""
    services: Services = api.app.services
    portal = api.client.portal
    assert portal is not None
    records = portal.call(services.keys.find, key)
    assert records
    portal.call(services.keys.retire, records)


def test_no_authorization_header_is_e056(api: Api) -> None:
    """A request without an Authorization header is 401 E056."""
    assert error_of(api.call("GET", "/resources", key="none")) == (401, "E056")


@pytest.mark.parametrize("scheme", ["Basic", "Token", "Bearer:", ""])
def test_not_bearer_is_e056(api: Api, scheme: str) -> None:
    """An Authorization header that is not `Bearer <key>` is 401 E056."""
    headers = {"authorization": f"{scheme} {api.pair.secret_key}".strip()}
    response = api.call("GET", "/resources", key="none", headers=headers)
    assert error_of(response) == (401, "E056")


@pytest.mark.parametrize("scheme", ["bearer", "BEARER"])
def test_bearer_scheme_is_case_insensitive(api: Api, scheme: str) -> None:
    """The scheme name may come in any case, as HTTP allows."""
    headers = {"authorization": f"{scheme} {api.pair.secret_key}"}
    assert api.call("GET", "/resources", key="none", headers=headers).status_code == 200


@pytest.mark.parametrize("key", UNKNOWN_KEYS)
def test_unknown_key_is_e055(api: Api, key: str) -> None:
    """A Bearer key the service never issued is 401 E055."""
    response = api.call("GET", "/resources", key="none", headers={"authorization": f"Bearer {key}"})
    assert error_of(response) == (401, "E055")


def test_both_keys_of_a_pair_work(api: Api) -> None:
    """The public and the secret key each authenticate a read."""
    assert api.call("GET", "/resources", key="public").status_code == 200
    assert api.call("GET", "/resources", key="secret").status_code == 200


def test_revoked_secret_key_is_e055(api: Api) -> None:
    """Once revoked, a secret key is refused with 401 E055."""
    revoke(api, api.pair.secret_key)
    assert error_of(api.call("GET", "/resources")) == (401, "E055")


def test_revoking_one_key_leaves_its_pair_working(api: Api) -> None:
    """Revoking the public key alone leaves the secret key working."""
    revoke(api, api.pair.public_key)
    assert error_of(api.call("GET", "/resources", key="public")) == (401, "E055")
    assert api.call("GET", "/resources", key="secret").status_code == 200


def test_public_key_on_a_secret_endpoint_is_e015(api: Api) -> None:
    """A public key is refused on a secret-only endpoint with 401 E015."""
    response = api.call("POST", "/resources", {"name": "x"}, key="public")
    assert error_of(response) == (401, "E015")


def test_public_key_may_lock_and_unlock(api: Api) -> None:
    """Locking and unlocking are open to the public key."""
    slot = api.slot(api.resource()["id"])
    assert api.lock(slot["id"], "k", key="public").status_code == 200
    assert api.unlock(slot["id"], "k", key="public").status_code == 200


def test_key_never_appears_in_a_response(api: Api) -> None:
    """Neither a success nor a refusal echoes the caller's key."""
    responses = [
        api.call("GET", "/resources"),
        api.call("POST", "/resources", {"name": "x"}, key="public"),
        api.call("GET", "/nowhere"),
    ]
    for response in responses:
        assert api.pair.secret_key not in response.text
        assert api.pair.public_key not in response.text


def test_other_environment_gets_404_for_a_slot(api: Api, other_api: Api) -> None:
    """Another environment's key finds no slot of this one (404 E025)."""
    slot = api.slot(api.resource()["id"])
    assert error_of(other_api.call("GET", f"/slots/{slot['id']}")) == (404, "E025")


def test_other_environment_lists_no_slots(api: Api, other_api: Api) -> None:
    """Another environment's list of slots is empty, also when filtered by the resource."""
    resource_id = api.resource()["id"]
    api.slot(resource_id)
    assert other_api.ok("GET", "/slots") == []
    assert other_api.ok("GET", "/slots", params={"resource_id": resource_id}) == []


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/disable"),
        ("POST", "/enable"),
        ("POST", "/lock"),
        ("POST", "/unlock"),
    ],
)
def test_other_environment_cannot_touch_a_slot(
    api: Api, other_api: Api, method: str, suffix: str
) -> None:
    """Every slot endpoint answers another environment 404 E025, and nothing changes."""
    slot = api.slot(api.resource()["id"])
    json = slot_request_body(method, suffix)
    response = other_api.call(method, f"/slots/{slot['id']}{suffix}", json)
    assert error_of(response) == (404, "E025")
    assert api.ok("GET", f"/slots/{slot['id']}") == slot


def test_other_environment_does_not_see_a_lock_on_its_own_slot(api: Api, other_api: Api) -> None:
    """Two environments lock their own slots independently with the same lock_key."""
    mine = api.slot(api.resource()["id"])
    theirs = other_api.slot(other_api.resource()["id"])
    assert api.lock(mine["id"], "same-key").status_code == 200
    assert other_api.lock(theirs["id"], "same-key").status_code == 200


class HeldKeys:
    """A key store whose lookups wait until released, counted; each fails with `failure`
    while it is set."""

    def __init__(self, record: KeyRecord) -> None:
        self.record = record
        self.lookups = 0
        self.released = asyncio.Event()
        self.failure: Exception | None = None

    async def lookup(self, key_hash: str) -> KeyRecord | None:
        self.lookups += 1
        await self.released.wait()
        if self.failure is not None:
            raise self.failure
        return self.record


SECRET = "sk_" + "5" * 64


def held_authenticator() -> tuple[Authenticator, HeldKeys]:
    record = KeyRecord(key_hash=hash_key(SECRET), environment="test", scope="secret",
                       pair_id="pair", created_ms=0)  # fmt: skip
    keys = HeldKeys(record)
    return Authenticator(cast(KeyStore, keys), lambda: 1_000, cache_s=2.0), keys


def test_requests_that_miss_the_cache_together_share_one_lookup() -> None:
    """A key's requests that find no cache entry while its lookup runs wait for that one
    lookup instead of sending their own, and all get its caller."""

    async def scenario() -> None:
        authenticator, keys = held_authenticator()
        waiting = [asyncio.ensure_future(authenticator.authenticate(f"Bearer {SECRET}"))
                   for _ in range(20)]  # fmt: skip
        await asyncio.sleep(0)
        keys.released.set()
        callers = await asyncio.gather(*waiting)
        assert keys.lookups == 1
        assert {caller.key_hash for caller in callers} == {hash_key(SECRET)}
        await authenticator.authenticate(f"Bearer {SECRET}")  # cached now
        assert keys.lookups == 1

    asyncio.run(scenario())


def test_a_failed_shared_lookup_fails_its_requests_and_the_next_one_tries_again() -> None:
    """Redis down during the lookup: every request waiting on it gets the error (a 503 for
    each); the next request looks the key up afresh."""

    async def scenario() -> None:
        authenticator, keys = held_authenticator()
        keys.failure = RedisConnectionError("down")
        waiting = [asyncio.ensure_future(authenticator.authenticate(f"Bearer {SECRET}"))
                   for _ in range(5)]  # fmt: skip
        await asyncio.sleep(0)
        keys.released.set()
        outcomes = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(outcome, RedisConnectionError) for outcome in outcomes)
        keys.failure = None
        assert (await authenticator.authenticate(f"Bearer {SECRET}")).environment == "test"
        assert keys.lookups == 2

    asyncio.run(scenario())


def test_a_request_that_goes_away_cancels_nobody_elses_lookup() -> None:
    """The request that started the lookup is cancelled (its client left): the others still
    get the caller from it."""

    async def scenario() -> None:
        authenticator, keys = held_authenticator()
        first = asyncio.ensure_future(authenticator.authenticate(f"Bearer {SECRET}"))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(authenticator.authenticate(f"Bearer {SECRET}"))
        await asyncio.sleep(0)
        first.cancel()
        keys.released.set()
        assert (await second).environment == "test"
        assert first.cancelled()
        assert keys.lookups == 1

    asyncio.run(scenario())
