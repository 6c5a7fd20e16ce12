"""Pure rules, no I/O: facts, amounts, multipliers, anti-abuse, streaks, levels."""
