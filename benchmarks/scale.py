"""How much work each measurement does: the full run, --quick, and the tests' tiny run."""

from __future__ import annotations

from dataclasses import dataclass

# The sizes the targets are stated for; a run below them says so in the table.
FULL_INTEGRITY_TX = 1_000_000
FULL_MEMORY_AWARDS = 1_000_000
FULL_MEMORY_ACCOUNTS = 100_000


@dataclass(frozen=True, slots=True)
class Scale:
    """Counts per measurement; `accounts` spreads the awards of the throughput runs."""

    name: str
    single: int
    in_flight: int
    naive_single: int
    naive: int
    bursts: int
    accounts: int
    messages: int
    users: int
    # Webhook messages per run (timed), after a warm-up of half as many.
    webhook: int
    inbound: int
    outbound: int
    integrity_tx: int
    integrity_accounts: int
    memory_awards: int
    memory_accounts: int
    # Rank cards drawn one after another.
    cards: int

    @property
    def scaled(self) -> bool:
        return (
            self.integrity_tx < FULL_INTEGRITY_TX
            or self.memory_awards < FULL_MEMORY_AWARDS
            or self.memory_accounts < FULL_MEMORY_ACCOUNTS
        )

    def describe(self) -> str:
        if not self.scaled:
            return "full (1,000,000 transactions for the integrity check and for memory)"
        return (
            f"scaled ({self.name}): integrity check on {self.integrity_tx:,} transactions"
            f" and memory over {self.memory_awards:,} awards on {self.memory_accounts:,}"
            f" accounts instead of 1,000,000 / 1,000,000 on 100,000; {self.in_flight:,}"
            f" awards per in-flight level, {self.messages:,} end-to-end messages,"
            f" {self.inbound:,} inbound events; their targets are not judged"
        )


FULL = Scale(
    name="full",
    single=5_000,
    in_flight=60_000,
    naive_single=2_000,
    naive=5_000,
    bursts=300,
    accounts=10_000,
    messages=20_000,
    users=1_000,
    webhook=10_000,
    inbound=20_000,
    outbound=50_000,
    integrity_tx=FULL_INTEGRITY_TX,
    integrity_accounts=100_000,
    memory_awards=FULL_MEMORY_AWARDS,
    memory_accounts=FULL_MEMORY_ACCOUNTS,
    cards=2_000,
)

QUICK = Scale(
    name="quick",
    single=1_000,
    in_flight=10_000,
    naive_single=500,
    naive=1_000,
    bursts=60,
    accounts=5_000,
    messages=3_000,
    users=500,
    webhook=2_000,
    inbound=3_000,
    outbound=10_000,
    integrity_tx=100_000,
    integrity_accounts=10_000,
    memory_awards=20_000,
    memory_accounts=2_000,
    cards=300,
)

# Only for the test that proves the harness runs end to end; its figures mean nothing.
TINY = Scale(
    name="tiny",
    single=100,
    in_flight=1_000,
    naive_single=50,
    naive=200,
    bursts=5,
    accounts=200,
    messages=200,
    users=50,
    webhook=100,
    inbound=200,
    outbound=500,
    integrity_tx=2_000,
    integrity_accounts=200,
    memory_awards=1_000,
    memory_accounts=100,
    cards=20,
)

SCALES = {scale.name: scale for scale in (FULL, QUICK, TINY)}
