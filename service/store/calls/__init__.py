"""One typed method per Lua script: named KEYS and ARGV in, a decoded reply out.

Each method's keyword parameters are its script's header, in order: every KEYS[i] and
ARGV[i] by the name the header gives it, and a repeated tail (KEYS[n..], ARGV[n..]) as
one sequence parameter of a typed group (tests/test_script_signatures.py checks them).
It sends one EVALSHA through the registered script (service/scripts.py) and turns the
reply into a value: a refusal raises its ApiError (refusals.py), and a status a store
acts on (STALE, REPLAY, GONE, ...) is a type of its own. No store indexes a raw reply.

Modules by the scripts they call: locks (read, lock, unlock, the lock-end sweep),
slots, bookings, moves (the cross-resource reschedule), resources (and their indexes).
"""
