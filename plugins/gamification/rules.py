"""What an amount is worth: base points times multipliers, rounded once."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from plugins.gamification.errors import InvalidAmountError
from plugins.gamification.models import Breakdown, Multiplier

MAX_FACTOR = Decimal(1000)


def apply_multipliers(base: int, multipliers: Iterable[Multiplier] = ()) -> Breakdown:
    """Multiply exactly in Decimal and round once, halves away from zero.

    ROUND_HALF_UP in `decimal` rounds 2.5 to 3 and -2.5 to -3: away from zero.
    """
    factors = tuple(multipliers)
    product = Decimal(base)
    for multiplier in factors:
        factor = multiplier.factor
        if not isinstance(factor, Decimal):
            raise InvalidAmountError(f"The multiplier {multiplier.name!r} must be a Decimal.")
        if not factor.is_finite() or factor <= 0 or factor > MAX_FACTOR:
            raise InvalidAmountError(
                f"The multiplier {multiplier.name!r} must be above 0 and at most {MAX_FACTOR}."
            )
        product *= factor
    try:
        result = int(product.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except InvalidOperation as exc:  # pragma: no cover - bounded by MAX_FACTOR above
        raise InvalidAmountError("The amount is too large.") from exc
    return Breakdown(base=base, multipliers=factors, result=result)
