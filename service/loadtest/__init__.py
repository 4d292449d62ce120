"""`slotlock loadtest`: drive a running service like booking frontends do, from outside.

    command.py           the subcommand's arguments (imports nothing heavy)
    runner.py            one run: set up, drive the users, check, report
    scenarios.py         the virtual users: checkout and hot-lock
    client.py            the slot API calls they make, each answer recorded
    transport.py         the HTTP client behind them: aiohttp, or raw_http.py
    fixture.py           the resource and slots a run creates
    observations.py      what the users saw of locks and bookings
    invariants.py        checks over those observations
    verify.py            checks against the service's state after the run
    stats.py, report.py  percentiles, the table, the JSON file
    progress.py          the live progress line

aiohttp is imported only once a run starts, so `slotlock serve` never loads it.
"""
