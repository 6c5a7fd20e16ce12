"""The points ledger: schema, hash chain, the single writer and the readers."""
