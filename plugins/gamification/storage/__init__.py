"""The only place with SQL: the LedgerStorage protocol and its backends."""
