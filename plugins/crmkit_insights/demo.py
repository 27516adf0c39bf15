"""Demo data for ``crmkit demo``: the demo's deals were all moved a moment ago, so their
stage history is spread back over the last months (as if the team had worked them since),
which gives the funnel its median days in stage."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict

from sqlalchemy import select, update

import crmkit
from crmkit_insights.models import STAGE_MOVES


def load(crm: crmkit.CRM, seed: int = 19) -> None:
    """Spread each deal's history back in time: its latest move 0-40 days ago, each earlier
    one 2-30 days before the next (the plugin's own table; the deals are left as they are)."""
    rng = random.Random(seed)
    now = crmkit.utcnow()
    with crm.transaction() as op:
        moves: dict[int, list[int]] = defaultdict(list)
        for move_id, deal_id in op.session.execute(
            select(STAGE_MOVES.c.id, STAGE_MOVES.c.deal_id).order_by(
                STAGE_MOVES.c.deal_id, STAGE_MOVES.c.entered_at, STAGE_MOVES.c.id
            )
        ):
            moves[deal_id].append(move_id)
        for ids in moves.values():
            moment = now - dt.timedelta(days=rng.uniform(0, 40))
            for move_id in reversed(ids):
                op.session.execute(
                    update(STAGE_MOVES).where(STAGE_MOVES.c.id == move_id).values(entered_at=moment)
                )
                moment -= dt.timedelta(days=rng.uniform(2, 30))
