"""The ledger on a PostgreSQL server (asyncpg): the same contract as SQLite, several writers."""
