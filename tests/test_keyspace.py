"""Key names: the hot path's all-at-once keys are the same names as the single-key functions."""

from __future__ import annotations

import pytest

from service import keyspace

SLOT_ID = "59823de7-4c03-45e2-a4e8-e196e75fb81c"
HOLDER = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("holder", [HOLDER, ""])
def test_slot_keys_are_the_single_key_functions_names(holder: str) -> None:
    """A lock through slot_keys touches the very keys every other script names one by one."""
    keys = keyspace.slot_keys(SLOT_ID, holder)
    assert keys == keyspace.SlotKeys(
        slot=keyspace.slot(SLOT_ID),
        lock=keyspace.lock(SLOT_ID),
        resource=keyspace.resource(SLOT_ID),
        holds=keyspace.holds(SLOT_ID, holder),
        held=keyspace.held(SLOT_ID),
        lock_ends=keyspace.lock_ends(SLOT_ID),
        events=keyspace.events(SLOT_ID),
    )


def test_a_slot_s_keys_share_its_resource_s_hash_tag() -> None:
    """Every key of one slot hashes to one Cluster slot: the tag of its id's first group."""
    assert {key.split("}")[0] for key in keyspace.slot_keys(SLOT_ID, HOLDER)} == {"sl:{59823de7"}
