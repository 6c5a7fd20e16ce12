"""Old import path of the progress rules and the writer's effects; see progression.py and
ledger/effects.py, where they now live."""

from plugins.gamification.ledger.effects import INSERT_OUTBOX, Effects
from plugins.gamification.progression import ProgressRules, counter_of, level_thresholds

__all__ = ["INSERT_OUTBOX", "Effects", "ProgressRules", "counter_of", "level_thresholds"]
