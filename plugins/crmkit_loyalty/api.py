"""REST routes of the loyalty plugin, mounted by the core under ``/plugins/loyalty``.

Thin handlers over the same services as the CLI; crmkit errors become problem+json in the
core's exception handlers, and every route documents the problems it may answer
(``crmkit.problem_responses``). Writes take an ``Idempotency-Key`` header: the same key
again returns the first answer and changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody, PathParameter, QueryParameter

import crmkit
from crmkit_loyalty import coupons, jobs, service, views
from crmkit_loyalty.cards import card_image, clean_number

CrmDependency = NamedDependency[crmkit.CRM]
ActorDependency = NamedDependency[crmkit.User | None]
CardNumber = Annotated[
    str, PathParameter(min_length=1, max_length=40, description="The card number.")
]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        max_length=100,
        description="The same key again returns the first answer and changes nothing.",
    ),
]
READ = crmkit.problem_responses(401, 403, 404, 422)
WRITE = crmkit.problem_responses(401, 403, 404, 409, 422)

Amount = str | float
Id = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
Points = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]


class Item(msgspec.Struct):
    """One line of a purchase."""

    amount: Amount
    sku: str | None = None
    name: str | None = None
    category: str | None = None
    quantity: Amount | None = None


class PurchaseIn(msgspec.Struct):
    """A purchase to record."""

    amount: Amount
    currency: str = "CNY"
    receipt_id: str | None = None
    store: str | None = None
    occurred_at: str | None = None
    items: list[Item] = msgspec.field(default_factory=list)


class RedeemIn(msgspec.Struct):
    """Points to spend."""

    points: Points
    note: str | None = None


class RefundIn(msgspec.Struct):
    """A refund of a receipt (all that is left of it unless ``amount`` is given)."""

    receipt_id: str
    amount: Amount | None = None
    program: str | None = None


class CardIn(msgspec.Struct):
    """A card to issue."""

    contact_id: Id
    program: str | None = None


class BlockIn(msgspec.Struct):
    """Why a card is blocked, and whether a new card takes over."""

    reason: str = "lost"
    replace: bool = True


class CouponIn(msgspec.Struct):
    """The reward a coupon is issued for."""

    reward: str


class CouponUseIn(msgspec.Struct):
    """The receipt a coupon was used on."""

    receipt_id: str | None = None


def _item(item: Item) -> dict[str, Any]:
    return {
        key: value
        for key, value in msgspec.structs.asdict(item).items()
        if value is not None or key == "amount"
    }


class LoyaltyController(Controller):
    """Programs, cards, purchases, redemptions, refunds, coupons, statements, members."""

    path = "/"
    tags = ["loyalty"]  # noqa: RUF012 - Litestar reads this class attribute

    @get("/programs", sync_to_thread=True, responses=READ)
    def programs(self, crm: CrmDependency, actor: ActorDependency) -> list[dict[str, Any]]:
        """Every program with its rules."""
        return service.list_programs(crm, actor=actor)

    @post("/programs", sync_to_thread=True, responses=WRITE)
    def add_program(
        self, crm: CrmDependency, actor: ActorDependency, data: JSONBody[dict[str, Any]]
    ) -> dict[str, Any]:
        """Create or replace a program (see the loyalty docs for its keys)."""
        return service.add_program(crm, data, actor=actor)

    @post("/cards", sync_to_thread=True, responses=WRITE)
    def issue_card(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        data: JSONBody[CardIn],
        key: IdempotencyKey = None,
    ) -> dict[str, Any]:
        """Issue a card to a contact."""
        return service.issue_card(crm, data.contact_id, program=data.program, key=key, actor=actor)

    @get("/cards/{number:str}", sync_to_thread=True, responses=READ)
    def card(
        self, crm: CrmDependency, actor: ActorDependency, number: CardNumber
    ) -> dict[str, Any]:
        """A card: balance, pending points, tier, points expiring soon."""
        return views.card(crm, number, actor=actor)

    @post("/cards/{number:str}/block", sync_to_thread=True, responses=WRITE)
    def block(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        number: CardNumber,
        data: JSONBody[BlockIn],
        key: IdempotencyKey = None,
    ) -> dict[str, Any]:
        """Block a card; by default a new card takes over its points and history."""
        return service.block_card(
            crm, number, reason=data.reason, replace=data.replace, key=key, actor=actor
        )

    @post("/cards/{number:str}/purchases", sync_to_thread=True, responses=WRITE)
    def purchase(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        number: CardNumber,
        data: JSONBody[PurchaseIn],
        key: IdempotencyKey = None,
    ) -> dict[str, Any]:
        """Record a purchase and earn its points."""
        return service.record_purchase(
            crm,
            number,
            data.amount,
            currency=data.currency,
            receipt_id=data.receipt_id,
            items=[_item(item) for item in data.items],
            store=data.store,
            occurred_at=data.occurred_at,
            key=key,
            actor=actor,
        )

    @post("/cards/{number:str}/redeem", sync_to_thread=True, responses=WRITE)
    def redeem(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        number: CardNumber,
        data: JSONBody[RedeemIn],
        key: IdempotencyKey = None,
    ) -> dict[str, Any]:
        """Spend points, soonest-expiring first."""
        return service.redeem(crm, number, data.points, note=data.note, key=key, actor=actor)

    @post("/refunds", sync_to_thread=True, responses=WRITE)
    def refund(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        data: JSONBody[RefundIn],
        key: IdempotencyKey = None,
    ) -> dict[str, Any]:
        """Refund a purchase; its points are taken back even if already spent."""
        return service.refund(
            crm, data.receipt_id, amount=data.amount, program=data.program, key=key, actor=actor
        )

    @get("/cards/{number:str}/statement", sync_to_thread=True, responses=READ)
    def statement(
        self, crm: CrmDependency, actor: ActorDependency, number: CardNumber
    ) -> list[dict[str, Any]]:
        """Every points movement of the card (and the cards it replaced)."""
        return views.statement(crm, number, actor=actor)

    @get(
        "/cards/{number:str}/statement.csv",
        sync_to_thread=True,
        media_type="text/csv",
        responses=READ,
    )
    def statement_csv(
        self, crm: CrmDependency, actor: ActorDependency, number: CardNumber
    ) -> Response[str]:
        """The statement as CSV."""
        rows = views.statement(crm, number, actor=actor)
        return Response(views.statement_csv(rows), media_type="text/csv; charset=utf-8")

    @get(
        "/cards/{number:str}/image.svg",
        sync_to_thread=True,
        media_type="image/svg+xml",
        responses=READ,
    )
    def image_svg(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        number: CardNumber,
        kind: Annotated[str, QueryParameter(description="qr or barcode.")] = "qr",
    ) -> Response[bytes]:
        """The card number as a QR code or a Code 128 barcode (SVG)."""
        found = views.card(crm, number, actor=actor)["card"]
        return Response(card_image(clean_number(found), kind, "svg"), media_type="image/svg+xml")

    @get(
        "/cards/{number:str}/image.png", sync_to_thread=True, media_type="image/png", responses=READ
    )
    def image_png(
        self, crm: CrmDependency, actor: ActorDependency, number: CardNumber
    ) -> Response[bytes]:
        """The card number as a QR code (PNG)."""
        found = views.card(crm, number, actor=actor)["card"]
        return Response(card_image(clean_number(found), "qr", "png"), media_type="image/png")

    @get("/cards/{number:str}/coupons", sync_to_thread=True, responses=READ)
    def coupons_of(
        self, crm: CrmDependency, actor: ActorDependency, number: CardNumber
    ) -> list[dict[str, Any]]:
        """The card's coupons, newest first."""
        return coupons.coupons_of(crm, number, actor=actor)

    @post("/cards/{number:str}/coupons", sync_to_thread=True, responses=WRITE)
    def issue_coupon(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        number: CardNumber,
        data: JSONBody[CouponIn],
        key: IdempotencyKey = None,
    ) -> dict[str, Any]:
        """Issue a coupon of a reward (its points cost is redeemed)."""
        return coupons.issue_coupon(crm, number, data.reward, key=key, actor=actor)

    @post("/coupons/{code:str}/redeem", sync_to_thread=True, responses=WRITE)
    def redeem_coupon(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        code: Annotated[str, PathParameter(min_length=1, max_length=40)],
        data: JSONBody[CouponUseIn],
        key: IdempotencyKey = None,
    ) -> dict[str, Any]:
        """Use a coupon (once, before it expires)."""
        return coupons.redeem_coupon(crm, code, receipt_id=data.receipt_id, key=key, actor=actor)

    @get("/contacts/{contact_id:int}", sync_to_thread=True, responses=READ)
    def member(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        contact_id: Annotated[int, PathParameter(ge=1, le=2**31 - 1)],
        purchases: Annotated[int, QueryParameter(ge=0, le=500)] = 20,
    ) -> dict[str, Any]:
        """A contact's cards, balances, tiers, points expiring soon and purchases."""
        return views.member(crm, contact_id, purchases=purchases, actor=actor)

    @post("/jobs/expire", sync_to_thread=True, responses=WRITE)
    def expire(self, crm: CrmDependency, actor: ActorDependency) -> dict[str, int]:
        """Release pending points, send expiry notices, expire what is due."""
        return jobs.expire_points(crm, actor=actor)

    @post("/jobs/review-tiers", sync_to_thread=True, responses=WRITE)
    def review_tiers(self, crm: CrmDependency, actor: ActorDependency) -> dict[str, int]:
        """Review every card's tier (upgrades, grace periods, downgrades)."""
        return jobs.review_tiers(crm, actor=actor)


def routes() -> list[Any]:
    """What ``crmkit_api_routes`` returns."""
    return [LoyaltyController]
