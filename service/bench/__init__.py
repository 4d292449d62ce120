"""`slotlock bench`: slotlock's hot paths against a framework ceiling and a naive anchor.

command.py        the subcommand's arguments (imports nothing heavy)
runner.py         one run: Redis, each workload's three phases, the report
workloads.py      what the load sends: lock/unlock, GET /slots/:id, POST /bookings
servers.py        each phase's server: the anchors, and `slotlock serve` with its probes
anchors.py        the bare and the naive ASGI apps
anchor_stores.py  what the anchors keep: nothing, or Redis by one EVALSHA per request
processes.py      child processes pinned with taskset, stopped by pid
generator.py      the load generator process (`python -m service.bench.generator`)
phases.py         one measured phase: the generator, CPU and RSS samples, Redis stats
calls.py          Redis calls per request, counted on MONITOR
redis_probe.py    INFO commandstats, MONITOR segments, MEMORY USAGE of a slot
probes.py         /proc: RSS and CPU time of a process
report.py         ratios and targets
report_table.py   the printed table
instructions.py   `--instructions N`: each server's count per workload
callgrind.py      one server under callgrind, counting while a load is sent
in_process.py     `--in-process N`: the service's own CPU per lock/unlock, in one process
rounds.py         a phase measured in rounds the servers take in turn, merged
"""
