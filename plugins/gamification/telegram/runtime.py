"""The plugin's wiring, built once by setup and frozen: services and the bus side around them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from plugins.gamification.bus.events import EventBus
from plugins.gamification.bus.inbound import InboundEvents
from plugins.gamification.bus.relay import OutboxRelay
from plugins.gamification.services.figures import Figures, RelayFigures, read_figures
from plugins.gamification.services.runtime import Services
from plugins.gamification.services.web_access import WebOptions
from plugins.gamification.telegram.announcer import Announcer
from plugins.gamification.telegram.cards import RankCards


@dataclass(frozen=True, slots=True)
class Runtime:
    """What the handlers, the collector and the operator tools reach the plugin through.

    The services know nothing of the bus or of Telegram; this holds them side by side, so
    nothing has to be set on the services from outside after they are built.
    """

    services: Services
    # None when the services are used without an event bus.
    bus: EventBus | None = None
    relay: OutboxRelay | None = None
    inbound: InboundEvents | None = None
    announcer: Announcer | None = None
    # Where the chat pages are served ([web]); None: the bot serves none.
    web: WebOptions | None = None
    # /points as a picture ([gamification.cards]); None: the text reply alone.
    cards: RankCards | None = None

    def figures(self) -> Figures:
        """One read of everything /gstats and the Prometheus collector report."""
        return read_figures(self.services, self._relay_figures())

    def _relay_figures(self) -> RelayFigures | None:
        relay, inbound = self.relay, self.inbound
        if relay is None:
            return None
        return RelayFigures(
            delivered=relay.delivered,
            lag=relay.lag,
            failures=relay.failures,
            breaker_state=relay.breaker_state,
            last_error=relay.last_error,
            inbound=Counter(inbound.counts) if inbound is not None else None,
            parked=inbound.parked if inbound is not None else 0,
        )
