"""slotlock: a Redis-backed slot-hold service."""

from service import native

# Before any other module of the package loads: a compiled build that no longer matches
# its sources is bypassed, so an edit always takes effect (service/native.py).
native.guard()
