"""REST routes of the loyalty plugin, mounted by the core under ``/plugins/loyalty``.

Thin handlers over the same services as the CLI; crmkit errors become problem+json in the
core's exception handlers, and every route documents the problems it may answer
(``crmkit.problem_responses``). Writes take an ``Idempotency-Key`` header: the same key
again returns the first answer and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, TypeVar, cast

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


# -- answers ------------------------------------------------------------------------------------
# The services answer JSON-ready dicts (the CLI prints the same); these types are what the
# OpenAPI document says they hold, so that a generated client gets named, typed models.

T = TypeVar("T")


def _answer(kind: type[T], value: object) -> T:
    """``value``, a service's JSON-ready answer, as the body of a route typed ``kind``."""
    return cast(T, value)


#: A value of a program's definition in a request (text, number, yes/no, lists and tables).
ProgramValue = (
    str
    | int
    | float
    | bool
    | None
    | list[dict[str, str | int | float | bool | None]]
    | dict[str, str | int | float | bool | None]
)


class Repeatable(msgspec.Struct, kw_only=True):
    """A write's answer; ``repeated`` is true when an ``Idempotency-Key`` was used before
    and this is the first answer again."""

    repeated: bool = False


class Multiplier(msgspec.Struct, kw_only=True):
    """A points multiplier of a program: when it applies, and by how much."""

    when: str
    factor: str
    value: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    name: str | None = None


class Validity(msgspec.Struct, kw_only=True):
    """How long earned points stay spendable."""

    months: int
    days: int
    round_to: str


class TierDefinition(msgspec.Struct, kw_only=True):
    """A tier and the qualifying value that reaches it."""

    name: str
    threshold: str


class RewardDefinition(msgspec.Struct, kw_only=True):
    """A reward a coupon can be issued for."""

    name: str
    kind: str
    value: str
    cost_points: int
    valid_days: int
    per_customer_limit: int | None


class SavedProgram(msgspec.Struct, kw_only=True):
    """A loyalty program's definition (see docs/loyalty.md)."""

    id: int
    name: str
    rates: dict[str, str]
    multipliers: list[Multiplier]
    validity: Validity
    timezone: str
    pending_days: int
    allow_negative: bool
    tiers: list[TierDefinition]
    tier_basis: str
    tier_window_months: int
    tier_grace_days: int
    card_prefix: str
    rewards: list[RewardDefinition]


class Program(SavedProgram, kw_only=True):
    """A program with its version and its number of active cards."""

    version: int
    cards: int


class IssuedCard(Repeatable, kw_only=True):
    """A card just issued."""

    card: str
    program: str
    contact_id: int
    status: str
    balance: int
    pending: int
    tier: str | None


class ExpiringPoints(msgspec.Struct, kw_only=True):
    """Points that expire soon."""

    expires_at: dt.datetime
    points: int


class CardSummary(msgspec.Struct, kw_only=True):
    """A card: its holder (null when their name is hidden from you), status, spendable and
    pending points, tier."""

    card: str
    program: str
    contact_id: int
    contact: str | None
    status: str
    balance: int
    pending: int
    tier: str | None
    tier_grace_until: dt.datetime | None
    issued_at: dt.datetime


class LoyaltyCard(CardSummary, kw_only=True):
    """A card with the points expiring soon, and the card that replaced it, if any."""

    expiring: list[ExpiringPoints]
    replaced_by: str | None = None


class BlockedCard(Repeatable, kw_only=True):
    """A card just blocked; when a new card took over, its number, points and the purchases
    moved."""

    card: str
    status: str
    reason: str
    replaced_by: str | None = None
    balance: int | None = None
    pending: int | None = None
    moved_purchases: int | None = None


class PurchaseRecorded(Repeatable, kw_only=True):
    """A purchase just recorded: its points (``pending`` until the program releases them),
    the card's balances and tier after it."""

    card: str
    receipt_id: str
    purchase_id: int
    points: int
    pending: bool
    balance: int
    pending_total: int
    tier: str | None
    tier_changed: bool


class Redemption(Repeatable, kw_only=True):
    """Points just spent."""

    card: str
    points: int
    balance: int
    note: str | None


class RefundDone(Repeatable, kw_only=True):
    """A refund: the points taken back (from pending first), those already spent
    (``below_zero`` or ``unrecovered``, explained in ``message``), the balances after it."""

    card: str
    receipt_id: str
    refunded_amount: str
    points: int
    reversed: int
    from_pending: int
    below_zero: int
    unrecovered: int
    balance: int
    pending_total: int
    message: str | None = None


class StatementEntry(msgspec.Struct, kw_only=True):
    """One points movement: the change of spendable (``points``) and of pending points
    (``pending``), and the spendable balance after it."""

    at: dt.datetime
    card: str
    kind: str
    points: int
    pending: int
    balance: int
    receipt_id: str | None
    note: str | None


class Coupon(Repeatable, kw_only=True):
    """A coupon: its reward, validity and use."""

    code: str
    card: str
    reward: str
    kind: str
    value: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    redeemed_at: dt.datetime | None
    redeemed_receipt: str | None


class MemberExpiring(ExpiringPoints, kw_only=True):
    """Points of one of the member's cards that expire soon."""

    card: str


class PurchaseLine(msgspec.Struct, kw_only=True):
    """One line of a recorded purchase."""

    amount: str
    sku: str | None = None
    name: str | None = None
    category: str | None = None
    quantity: str | None = None


class Purchase(msgspec.Struct, kw_only=True):
    """A recorded purchase and what of it was refunded."""

    receipt_id: str | None
    program: str
    card: str | None
    occurred_at: dt.datetime
    amount: str
    currency: str
    store: str | None
    items: list[PurchaseLine]
    points: int
    refunded_amount: str
    refunded_points: int


class Member(msgspec.Struct, kw_only=True):
    """A contact's loyalty: cards, points expiring soon, latest purchases."""

    contact_id: int
    cards: list[CardSummary]
    expiring: list[MemberExpiring]
    purchases: list[Purchase]


class ExpiryRun(msgspec.Struct, kw_only=True):
    """What the expiry job did: points released from pending, notices sent, points
    expired, cards touched."""

    released: int
    notified: int
    expired: int
    cards: int


class TierReview(msgspec.Struct, kw_only=True):
    """What the tier review did."""

    reviewed: int
    upgraded: int
    downgraded: int
    in_grace: int


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
    def programs(self, crm: CrmDependency, actor: ActorDependency) -> list[Program]:
        """Every program with its rules."""
        return _answer(list[Program], service.list_programs(crm, actor=actor))

    @post("/programs", sync_to_thread=True, responses=WRITE)
    def add_program(
        self, crm: CrmDependency, actor: ActorDependency, data: JSONBody[dict[str, ProgramValue]]
    ) -> SavedProgram:
        """Create or replace a program (see the loyalty docs for its keys)."""
        return _answer(SavedProgram, service.add_program(crm, data, actor=actor))

    @post("/cards", sync_to_thread=True, responses=WRITE)
    def issue_card(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        data: JSONBody[CardIn],
        key: IdempotencyKey = None,
    ) -> IssuedCard:
        """Issue a card to a contact."""
        return _answer(
            IssuedCard,
            service.issue_card(crm, data.contact_id, program=data.program, key=key, actor=actor),
        )

    @get("/cards/{number:str}", sync_to_thread=True, responses=READ)
    def card(self, crm: CrmDependency, actor: ActorDependency, number: CardNumber) -> LoyaltyCard:
        """A card: balance, pending points, tier, points expiring soon."""
        return _answer(LoyaltyCard, views.card(crm, number, actor=actor))

    @post("/cards/{number:str}/block", sync_to_thread=True, responses=WRITE)
    def block(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        number: CardNumber,
        data: JSONBody[BlockIn],
        key: IdempotencyKey = None,
    ) -> BlockedCard:
        """Block a card; by default a new card takes over its points and history."""
        return _answer(
            BlockedCard,
            service.block_card(
                crm, number, reason=data.reason, replace=data.replace, key=key, actor=actor
            ),
        )

    @post("/cards/{number:str}/purchases", sync_to_thread=True, responses=WRITE)
    def purchase(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        number: CardNumber,
        data: JSONBody[PurchaseIn],
        key: IdempotencyKey = None,
    ) -> PurchaseRecorded:
        """Record a purchase and earn its points."""
        answer = service.record_purchase(
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
        return _answer(PurchaseRecorded, answer)

    @post("/cards/{number:str}/redeem", sync_to_thread=True, responses=WRITE)
    def redeem(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        number: CardNumber,
        data: JSONBody[RedeemIn],
        key: IdempotencyKey = None,
    ) -> Redemption:
        """Spend points, soonest-expiring first."""
        answer = service.redeem(crm, number, data.points, note=data.note, key=key, actor=actor)
        return _answer(Redemption, answer)

    @post("/refunds", sync_to_thread=True, responses=WRITE)
    def refund(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        data: JSONBody[RefundIn],
        key: IdempotencyKey = None,
    ) -> RefundDone:
        """Refund a purchase; its points are taken back even if already spent."""
        answer = service.refund(
            crm, data.receipt_id, amount=data.amount, program=data.program, key=key, actor=actor
        )
        return _answer(RefundDone, answer)

    @get("/cards/{number:str}/statement", sync_to_thread=True, responses=READ)
    def statement(
        self, crm: CrmDependency, actor: ActorDependency, number: CardNumber
    ) -> list[StatementEntry]:
        """Every points movement of the card (and the cards it replaced)."""
        return _answer(list[StatementEntry], views.statement(crm, number, actor=actor))

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
    ) -> list[Coupon]:
        """The card's coupons, newest first."""
        return _answer(list[Coupon], coupons.coupons_of(crm, number, actor=actor))

    @post("/cards/{number:str}/coupons", sync_to_thread=True, responses=WRITE)
    def issue_coupon(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        number: CardNumber,
        data: JSONBody[CouponIn],
        key: IdempotencyKey = None,
    ) -> Coupon:
        """Issue a coupon of a reward (its points cost is redeemed)."""
        return _answer(Coupon, coupons.issue_coupon(crm, number, data.reward, key=key, actor=actor))

    @post("/coupons/{code:str}/redeem", sync_to_thread=True, responses=WRITE)
    def redeem_coupon(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        code: Annotated[str, PathParameter(min_length=1, max_length=40)],
        data: JSONBody[CouponUseIn],
        key: IdempotencyKey = None,
    ) -> Coupon:
        """Use a coupon (once, before it expires)."""
        answer = coupons.redeem_coupon(crm, code, receipt_id=data.receipt_id, key=key, actor=actor)
        return _answer(Coupon, answer)

    @get("/contacts/{contact_id:int}", sync_to_thread=True, responses=READ)
    def member(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        contact_id: Annotated[int, PathParameter(ge=1, le=2**31 - 1)],
        purchases: Annotated[int, QueryParameter(ge=0, le=500)] = 20,
    ) -> Member:
        """A contact's cards, balances, tiers, points expiring soon and purchases."""
        return _answer(Member, views.member(crm, contact_id, purchases=purchases, actor=actor))

    @post("/jobs/expire", sync_to_thread=True, responses=WRITE)
    def expire(self, crm: CrmDependency, actor: ActorDependency) -> ExpiryRun:
        """Release pending points, send expiry notices, expire what is due."""
        return _answer(ExpiryRun, jobs.expire_points(crm, actor=actor))

    @post("/jobs/review-tiers", sync_to_thread=True, responses=WRITE)
    def review_tiers(self, crm: CrmDependency, actor: ActorDependency) -> TierReview:
        """Review every card's tier (upgrades, grace periods, downgrades)."""
        return _answer(TierReview, jobs.review_tiers(crm, actor=actor))


def routes() -> list[Any]:
    """What ``crmkit_api_routes`` returns."""
    return [LoyaltyController]
