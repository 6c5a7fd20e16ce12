"""The hash chain: the canonical form of a transaction and its SHA-256 link."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

# One encoder for every canonical form: building json.dumps' encoder per call costs more
# than the encoding of these short rows.
compact_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

# The previous hash of every account's first transaction, and an empty account's head.
GENESIS_HASH = "0" * 64

# Bump only together with a migration that re-anchors every chain; old rows keep the
# encoding they were hashed with.
CHAIN_VERSION = 1


def chain_hash(
    prev_hash: str,
    *,
    tx_id: int,
    chat_id: int,
    user_id: int,
    seq: int,
    amount: int,
    balance_after: int,
    kind: str,
    idem_key: str,
    actor_id: int | None,
    reason: str,
    breakdown: str,
    created_at: str,
    reverts_id: int | None,
) -> str:
    """SHA-256 over the previous hash and every field that gives the row its meaning.

    The row id and seq are included so a row moved, swapped or renumbered breaks the chain.
    JSON with fixed separators is the canonical form: unambiguous for any text a user types.
    """
    canonical = compact_json(
        [
            CHAIN_VERSION,
            prev_hash,
            tx_id,
            chat_id,
            user_id,
            seq,
            amount,
            balance_after,
            kind,
            idem_key,
            actor_id,
            reason,
            breakdown,
            created_at,
            reverts_id,
        ]
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def request_hash(*parts: object) -> str:
    """Fingerprint of what a caller asked for, to tell a retry from a conflicting reuse."""
    return hashlib.sha256(compact_json([str(p) for p in parts]).encode()).hexdigest()


def heads_digest(heads: Iterable[tuple[int, int, int, str]]) -> str:
    """Digest over every account's chain head (chat_id, user_id, seq, hash), in key order.

    The caller must pass heads sorted by (chat_id, user_id); the digest is the outside
    anchor posted to the admins, so its form never changes.
    """
    digest = hashlib.sha256()
    for chat_id, user_id, seq, head in heads:
        digest.update(f"{chat_id}:{user_id}:{seq}:{head}\n".encode())
    return digest.hexdigest()
