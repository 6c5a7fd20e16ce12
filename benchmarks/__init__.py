"""`python -m benchmarks`: how fast and how lean the points ledger is, beside its baselines.

Not installed with the project: it imports the host (`bot`) and the plugin like any user.
Modules: `scale` (how much work each measurement does), `rows` (ledger rows built the way
the writer builds them), `ledger` (our engine), `baselines` (a naive engine and the raw
sqlite3 limit), `outbox` (the relay), `check` (the integrity check), `app` (end-to-end
through the Dispatcher and the bus; the only one that touches aiogram), `report` (the
table), `runner` (the order of it all and the command line).
"""
