"""The loyalty plugin's own hook, for other plugins to add earn rules.

Declared to crmkit with ``crm.add_hookspecs`` when the loyalty plugin starts; implement it
in any plugin with ``@crmkit.hookimpl``, as a core hook.
"""

from __future__ import annotations

from collections.abc import Sequence

import crmkit
from crmkit_loyalty.programs import EarnRule, Program, PurchaseFacts


class LoyaltyHooks:
    """Hook specifications of the loyalty plugin."""

    @staticmethod
    @crmkit.hookspec
    def crmkit_loyalty_earn_rules(
        op: crmkit.Operation, program: Program, purchase: PurchaseFacts
    ) -> Sequence[EarnRule] | None:
        """Add earn rules of your own to a purchase (collected).

        Called inside the purchase's transaction, once per purchase (and per row of an
        import), after the program's own rules are known. ``purchase`` says what was bought
        (amount, currency, items with categories, store, time, the member's tier and
        birthday). Return ``crmkit_loyalty.EarnRule`` objects: each multiplies the points
        by ``factor`` and adds ``bonus``; return ``None`` or ``[]`` when none applies.
        Raising refuses the purchase (nothing is written).

        Example::

            @crmkit.hookimpl
            def crmkit_loyalty_earn_rules(op, program, purchase):
                if any(item.get("sku") == "TEA-NEW" for item in purchase.items):
                    return [crmkit_loyalty.EarnRule("new tea launch", bonus=200)]
                return None
        """
