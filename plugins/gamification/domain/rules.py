"""What an amount is worth: base points times multipliers, rounded once."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation, localcontext

from plugins.gamification.domain.errors import InvalidAmountError
from plugins.gamification.domain.models import Breakdown, Multiplier

MAX_FACTOR = Decimal(1000)
MAX_FACTOR_DIGITS = 40


def apply_multipliers(
    base: int, multipliers: Iterable[Multiplier] = (), *, tag: str = ""
) -> Breakdown:
    """Multiply exactly in Decimal and round once, halves away from zero.

    ROUND_HALF_UP in `decimal` rounds 2.5 to 3 and -2.5 to -3: away from zero.
    """
    factors = tuple(multipliers)
    if not factors:
        return Breakdown(base=base, result=base, tag=tag)
    digits = len(str(abs(base)))
    for multiplier in factors:
        factor = multiplier.factor
        if not isinstance(factor, Decimal):
            raise InvalidAmountError(f"The multiplier {multiplier.name!r} must be a Decimal.")
        if not factor.is_finite() or factor <= 0 or factor > MAX_FACTOR:
            raise InvalidAmountError(
                f"The multiplier {multiplier.name!r} must be above 0 and at most {MAX_FACTOR}."
            )
        if len(factor.as_tuple().digits) > MAX_FACTOR_DIGITS:
            raise InvalidAmountError(
                f"The multiplier {multiplier.name!r} has more than {MAX_FACTOR_DIGITS} digits."
            )
        digits += len(factor.as_tuple().digits)
    # A private context wide enough for the exact product: the only rounding is the
    # final one, whatever precision the caller's thread has set.
    exact = Context(prec=digits + 2, rounding=ROUND_HALF_UP, traps=[InvalidOperation])
    with localcontext(exact):
        product = Decimal(base)
        for multiplier in factors:
            product *= multiplier.factor
        result = int(product.quantize(Decimal(1)))
    return Breakdown(base=base, multipliers=factors, result=result, tag=tag)
