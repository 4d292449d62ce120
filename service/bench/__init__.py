"""`slotlock bench`: slotlock's hot path against a framework ceiling and a naive anchor.

command.py      the subcommand's arguments (imports nothing heavy)
runner.py       one run: Redis, the three phases, the report
servers.py      each phase's server: the anchors, and `slotlock serve` with its probes
anchors.py      the bare and the naive ASGI apps
processes.py    child processes pinned with taskset, stopped by pid
generator.py    the load generator process (`python -m service.bench.generator`)
phases.py       one measured phase: the generator, CPU and RSS samples, Redis stats
calls.py        Redis calls per request, counted on MONITOR
redis_probe.py  INFO commandstats, MONITOR segments, MEMORY USAGE of a slot
probes.py       /proc: RSS and CPU time of a process
report.py       ratios, targets and the printed table
"""
