"""Demo data: a small, realistic CRM to try crmkit on (``crmkit demo``).

A team tree, sales reps, a pipeline, accounts and contacts with the mix of Simplified and
Traditional Chinese and Latin names, addresses and phone formats real customer lists have,
leads (some converted), deals across the stages, activities and tasks. The same ``seed``
gives the same data. Plugins add theirs through the ``crmkit_demo_data`` hook.
"""

from __future__ import annotations

import datetime as dt
import decimal
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from attrs import frozen
from sqlalchemy import select

from crmkit.db.base import utcnow
from crmkit.entities.customers import LeadStatus, LifecycleStage
from crmkit.entities.deals import Stage, StageKind
from crmkit.entities.followup import ActivityKind, TaskStatus
from crmkit.entities.organisation import Team, User
from crmkit.errors import CRMError
from crmkit.services.deals import DEFAULT_STAGES

if TYPE_CHECKING:
    from crmkit.app import CRM

_T = TypeVar("_T")

#: The root of the demo team tree; its presence means the demo data was loaded.
DEMO_ROOT_TEAM = "总部 HQ"
#: (team, parent team)
DEMO_TEAMS: tuple[tuple[str, str | None], ...] = (
    (DEMO_ROOT_TEAM, None),
    ("华东销售部 East Sales", DEMO_ROOT_TEAM),
    ("上海一组 Shanghai Team 1", "华东销售部 East Sales"),
    ("华南销售部 South Sales", DEMO_ROOT_TEAM),
)
#: (username, display name, e-mail, team, admin)
DEMO_USERS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("zhao.min", "赵敏", "zhao.min@demo.crmkit.dev", DEMO_ROOT_TEAM, True),
    ("li.na", "李娜", "li.na@demo.crmkit.dev", "华东销售部 East Sales", False),
    ("wang.fang", "王芳", "wang.fang@demo.crmkit.dev", "上海一组 Shanghai Team 1", False),
    ("zhou.jie", "周杰 Jay", "zhou.jie@demo.crmkit.dev", "上海一组 Shanghai Team 1", False),
    ("chan.kaming", "陳嘉明", "chan.kaming@demo.crmkit.dev", "华南销售部 South Sales", False),
    ("lin.yating", "林雅婷 Tina", "lin.yating@demo.crmkit.dev", "华南销售部 South Sales", False),
)


@frozen
class DemoSummary:
    """What :func:`load_demo_data` created."""

    teams: int
    users: int
    pipeline: str
    accounts: int
    contacts: int
    leads: int
    converted_leads: int
    deals: int
    stage_moves: int
    activities: int
    tasks: int

    def lines(self) -> list[str]:
        """One ``label: count`` line per kind of record."""
        return [
            f"teams: {self.teams}",
            f"users: {self.users}",
            f"pipeline: {self.pipeline}",
            f"accounts: {self.accounts}",
            f"contacts: {self.contacts}",
            f"leads: {self.leads} ({self.converted_leads} converted)",
            f"deals: {self.deals} ({self.stage_moves} stage moves)",
            f"activities: {self.activities}",
            f"tasks: {self.tasks}",
        ]


# -- the raw material ----------------------------------------------------------------------


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    """``"张 zhang, 王 wang"`` → ``(("张", "zhang"), ("王", "wang"))``."""
    return tuple((hanzi, latin) for hanzi, latin in (item.split() for item in text.split(",")))


def _items(text: str) -> tuple[str, ...]:
    """``"a | b c | d"`` → ``("a", "b c", "d")``."""
    return tuple(item.strip() for item in text.split("|"))


# (hanzi, romanisation): Simplified with pinyin for the mainland, Traditional with the
# spellings Hong Kong and Taiwan use.
_SURNAMES_SIMPLIFIED = _pairs(
    "张 zhang, 王 wang, 李 li, 刘 liu, 陈 chen, 杨 yang, 黄 huang, 赵 zhao, 吴 wu, 周 zhou,"
    " 徐 xu, 孙 sun, 马 ma, 朱 zhu, 胡 hu, 郭 guo, 何 he, 林 lin, 罗 luo, 高 gao, 欧阳 ouyang"
)
_GIVEN_SIMPLIFIED = _pairs(
    "伟 wei, 芳 fang, 娜 na, 敏 min, 静 jing, 丽 li, 强 qiang, 磊 lei, 军 jun, 洋 yang, 艳 yan,"
    " 杰 jie, 涛 tao, 超 chao, 秀英 xiuying, 建国 jianguo, 晓明 xiaoming, 子涵 zihan,"
    " 浩然 haoran, 雨欣 yuxin, 志强 zhiqiang, 海燕 haiyan"
)
_SURNAMES_TRADITIONAL = _pairs(
    "陳 chan, 黃 wong, 張 cheung, 劉 lau, 楊 yeung, 吳 ng, 林 lam, 蔡 tsai, 許 hsu, 鄭 cheng,"
    " 謝 hsieh, 郭 kuo, 梁 leung, 葉 yip, 曾 tseng"
)
_GIVEN_TRADITIONAL = _pairs(
    "志明 chihming, 淑芬 shufen, 美玲 meiling, 俊傑 chunkit, 家豪 kaho, 怡君 yichun,"
    " 雅婷 yating, 冠宇 kuanyu, 嘉欣 kayan, 偉倫 wailun, 詠琪 wingkei, 建宏 chienhung"
)
_ENGLISH_NAMES = _items(
    "David | Michelle | Kevin | Grace | Tony | Amy | Jason | Vivian | Peter | Cindy | Eric"
    " | Joyce | Ken | Winnie | Alan | Iris"
)


@frozen
class _City:
    name: str
    region: str
    country: str
    postal_code: str
    area_code: str
    streets: tuple[str, ...]


_CITIES = (
    _City("上海", "上海市", "CN", "200120", "021", _items(
        "浦东新区世纪大道{n}号 | 静安区南京西路{n}号 | 徐汇区漕溪北路{n}号 | 长宁区仙霞路{n}弄{m}号"
    )),
    _City("北京", "北京市", "CN", "100022", "010", _items(
        "朝阳区建国路{n}号 | 海淀区中关村大街{n}号 | 东城区王府井大街{n}号"
    )),
    _City("深圳", "广东省", "CN", "518057", "0755", _items(
        "南山区科苑路{n}号 | 福田区深南大道{n}号 | 宝安区新安街道{n}号"
    )),
    _City("台北", "臺北市", "TW", "110", "", _items(
        "信義區信義路五段{n}號 | 大安區敦化南路二段{n}號{m}樓 | 中山區南京東路三段{n}號"
    )),
    _City("香港", "香港", "HK", "", "", _items(
        "九龍尖沙咀廣東道{n}號 | 中環皇后大道中{n}號{m}樓 | 觀塘開源道{n}號"
    )),
)  # fmt: skip

_COMPANY_WORDS_SIMPLIFIED = _items(
    "锦程 | 华信 | 创维达 | 云栖 | 恒通 | 新源 | 东方 | 汇丰达 | 天成 | 博远 | 嘉禾 | 瑞丰 | 金桥"
    " | 宏图 | 鼎盛"
)
_COMPANY_WORDS_TRADITIONAL = _items(
    "宏達 | 永昌 | 精誠 | 聯發 | 台積 | 富邦 | 長榮 | 新光 | 國泰 | 萬通"
)
_COMPANY_WORDS_LATIN = _items(
    "Pacific Rim | Golden Dragon | Harbour Link | Silk Road | Jade Garden | Orient Star"
    " | Blue Ocean | Lotus | Kowloon Bay | Summit"
)
# (Simplified, Traditional, English, web-domain word)
_INDUSTRIES = tuple(
    tuple(item.strip() for item in industry.split("/"))
    for industry in _items(
        "贸易/貿易/Trading/trade | 科技/科技/Technology/tech | 电子/電子/Electronics/electronics"
        " | 食品/食品/Foods/food | 物流/物流/Logistics/logistics | 机械/機械/Machinery/machinery"
        " | 医疗器械/醫療器材/Medical/medical | 建材/建材/Building Materials/construction"
    )
)
_SOURCES = _items(
    "展会 trade show | 官网 website | 微信 WeChat | 转介绍 referral | 电话 cold call | LinkedIn"
    " | 阿里巴巴 1688 | 百度推广 Baidu ads"
)
_TIERS = _items("VIP | A | B | C")
_TITLES = _items(
    "总经理 | 采购经理 | 副总裁 | IT 主管 | 財務經理 | 董事長 | Purchasing Manager | CTO | 运营总监"
    " | 業務經理"
)
_INQUIRIES = _items(
    "想了解贵公司 ERP 系统的报价，大约 50 个用户。"
    " | 请问冷链物流服务覆盖华南地区吗？需要每周两次配送。"
    " | 展会上看到你们的新款设备，希望安排一次现场演示。"
    " | 我們需要繁體中文介面，可以提供試用帳號嗎？"
    " | Looking for a supplier of 2,000 units per month, please send a quotation."
    " | 朋友推荐过来的，想比较一下你们和现有供应商的价格。"
    " | 想咨询年度维保合同的条款和价格。"
)

# (kind, subject, body, customer request, watch points)
_ACTIVITIES: tuple[tuple[ActivityKind, str, str, str, str], ...] = (
    (
        ActivityKind.CALL,
        "电话回访：确认报价",
        "客户已收到报价单，对价格基本认可，希望缩短交货期。",
        "交货期从 6 周缩短到 4 周",
        "采购经理下周出差，需在周五前再联系",
    ),
    (
        ActivityKind.VISIT,
        "上门拜访：产品演示",
        "在客户会议室演示了新版系统，IT 主管参加，反馈积极。",
        "需要与现有财务软件对接",
        "竞争对手也在接触，注意报价节奏",
    ),
    (
        ActivityKind.EMAIL,
        "发送合同草案",
        "已通过邮件发送合同草案及付款条款说明。",
        "付款方式希望改为月结 60 天",
        "法务审核通常需要两周",
    ),
    (
        ActivityKind.MEETING,
        "季度业务回顾会议",
        "回顾本季度订单情况，讨论下季度采购计划。",
        "增加华南仓库的备货量",
        "客户对上次延迟发货仍有意见",
    ),
    (
        ActivityKind.NOTE,
        "客户背景备注",
        "客户为家族企业，决策人为董事长本人，重视长期合作关系。",
        "",
        "逢年过节需要问候；不喜欢电话推销",
    ),
    (
        ActivityKind.CALL,
        "電話跟進：試用情況",
        "客戶試用兩週，整體滿意，對報表功能有疑問。",
        "希望增加自訂報表",
        "決策需要總部批准",
    ),
    (
        ActivityKind.MEETING,
        "Kick-off meeting",
        "Agreed on the project plan and the weekly status call.",
        "A single point of contact on our side",
        "Budget approval is still pending",
    ),
)

_TASKS = _items(
    "发送报价单 | 安排产品演示 | 回访客户满意度 | 准备合同草案 | 确认发货时间 | 準備續約方案"
    " | Send the product brochure | 更新客户联系方式"
)
_DEAL_NAMES = _items(
    "年度采购合同 | ERP 系统升级 | 冷链物流服务 | 設備維護合約 | Annual supply contract"
    " | 新品首批订单 | 培训服务包"
)
_CURRENCY = {"CN": "CNY", "TW": "TWD", "HK": "HKD"}


# -- generators ----------------------------------------------------------------------------


class _DemoFactory:
    """Makes the demo records from one seeded random generator."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.now = utcnow().replace(microsecond=0)
        self._used_names: set[str] = set()

    def pick(self, items: Sequence[_T]) -> _T:
        return items[self.random.randrange(len(items))]

    def address(self, city: _City) -> str:
        return self.pick(city.streets).format(
            n=self.random.randint(1, 2000), m=self.random.randint(1, 30)
        )

    def digits(self, count: int) -> str:
        return "".join(str(self.random.randint(0, 9)) for _ in range(count))

    def mobile(self, country: str) -> str:
        """A mobile number as people write it: spaces, dashes, +86/0086, full-width."""
        if country == "HK":
            return f"+852 {self.pick('5689')}{self.digits(3)} {self.digits(4)}"
        if country == "TW":
            return self.pick(
                (
                    f"+886 9{self.digits(2)} {self.digits(3)} {self.digits(3)}",
                    f"+886-9{self.digits(2)}-{self.digits(6)}",
                )
            )
        number = self.pick(("138", "139", "135", "186", "159", "177", "188")) + self.digits(8)
        style = self.random.randrange(6)
        if style == 0:
            return f"{number[:3]} {number[3:7]} {number[7:]}"
        if style == 1:
            return f"{number[:3]}-{number[3:7]}-{number[7:]}"
        if style == 2:
            return f"+86 {number}"
        if style == 3:
            return f"0086 {number[:3]} {number[3:7]} {number[7:]}"
        if style == 4:  # full-width digits, as typed with a Chinese input method
            return "".join(chr(ord(c) + 0xFEE0) for c in number)
        return number

    def landline(self, city: _City) -> str:
        """An office number with its area code (and sometimes an extension)."""
        country, area = city.country, city.area_code
        if country == "HK":
            return f"+852 {self.pick('23')}{self.digits(3)} {self.digits(4)}"
        if country == "TW":
            return f"+886 2 {self.random.randint(2, 8)}{self.digits(3)} {self.digits(4)}"
        local = f"{self.random.randint(2, 8)}{self.digits(7)}"
        text = self.pick((f"{area}-{local[:4]} {local[4:]}", f"({area}) {local}", f"{area}{local}"))
        if self.random.random() < 0.2:
            text += f" 转 {self.random.randint(800, 8999)}"
        return text

    def person(self, country: str) -> tuple[str, str, str, str]:
        """``(full name, family name, given name, e-mail local part)``, unique per run."""
        for _ in range(50):
            full, family, given, local = self._person(country)
            if full not in self._used_names:
                self._used_names.add(full)
                return full, family, given, local
        suffix = str(len(self._used_names))
        return full + suffix, family, given, local + suffix

    def _person(self, country: str) -> tuple[str, str, str, str]:
        traditional = country in ("TW", "HK")
        surnames = _SURNAMES_TRADITIONAL if traditional else _SURNAMES_SIMPLIFIED
        givens = _GIVEN_TRADITIONAL if traditional else _GIVEN_SIMPLIFIED
        (family, family_latin), (given, given_latin) = self.pick(surnames), self.pick(givens)
        style = self.random.random()
        if style < 0.15:  # a Latin name only, as on many Hong Kong and Taiwan business cards
            english = self.pick(_ENGLISH_NAMES)
            latin_family = family_latin.capitalize()
            return f"{english} {latin_family}", latin_family, english, f"{english}.{family_latin}"
        if style < 0.35:  # Chinese name plus an English given name
            english = self.pick(_ENGLISH_NAMES)
            return f"{family}{given} {english}", family, given, f"{english}.{family_latin}"
        if style < 0.42:  # an ideographic space between family and given name
            return f"{family}\u3000{given}", family, given, f"{family_latin}.{given_latin}"
        return f"{family}{given}", family, given, f"{given_latin}.{family_latin}"

    def company(self, city: _City) -> tuple[str, str, str]:
        """``(name, industry, web domain)`` of a company in ``city``."""
        simplified, traditional, english, slug = self.pick(_INDUSTRIES)
        number = self.random.randint(1, 99)
        country = city.country
        if country == "CN" and self.random.random() < 0.8:
            word = self.pick(_COMPANY_WORDS_SIMPLIFIED)
            suffix = self.pick(("有限公司", "股份有限公司"))
            name, domain = f"{city.name}{word}{simplified}{suffix}", f"{slug}{number}.cn"
        elif country in ("TW", "HK") and self.random.random() < 0.6:
            word = self.pick(_COMPANY_WORDS_TRADITIONAL)
            suffix = "股份有限公司" if country == "TW" else "有限公司"
            name = f"{word}{traditional}{suffix}"
            domain = f"{slug}{number}.com.{country.lower()}"
        else:
            word = self.pick(_COMPANY_WORDS_LATIN)
            suffix = self.pick(("Co., Ltd.", "Limited", "Holdings Ltd."))
            name, domain = f"{word} {english} {suffix}", f"{slug}{number}.com"
        return name, simplified, domain

    def moment(self, days_back: int, days_forward: int = 0) -> dt.datetime:
        offset = self.random.randint(-days_back * 24 * 60, days_forward * 24 * 60)
        return self.now + dt.timedelta(minutes=offset)


# -- loading -------------------------------------------------------------------------------


def demo_data_loaded(crm: CRM) -> bool:
    """Whether :func:`load_demo_data` already ran on this database."""
    with crm.transaction(write=False) as op:
        return op.session.scalar(select(Team.id).where(Team.name == DEMO_ROOT_TEAM)) is not None


def load_demo_data(crm: CRM, *, contacts: int = 200, seed: int = 7) -> DemoSummary:
    """Fill the CRM with demo data and let plugins add theirs (``crmkit_demo_data``).

    Refused (``CRMError``) when the demo data is already there, or when a demo user name is
    taken. Deterministic for a given ``seed``; a few seconds for the default size.

    Example::

        summary = load_demo_data(crm, contacts=50)
        print(*summary.lines(), sep="\\n")
    """
    if contacts < 1:
        raise CRMError("the demo needs at least 1 contact")
    _refuse_if_loaded(crm)
    factory = _DemoFactory(seed)
    for name, parent in DEMO_TEAMS:
        crm.users.create_team(name, parent=parent)
    users = [
        crm.users.create(username, display_name=display, email=email, team=team, admin=admin)
        for username, display, email, team, admin in DEMO_USERS
    ]
    reps = [user for user in users if not user.is_admin]
    pipeline_name, stages = _pipeline(crm)

    account_rows = [_account(factory, reps) for _ in range(max(contacts // 4, 1))]
    account_ids = _create(crm, "account", account_rows)
    contact_rows = [_contact(factory, account_rows, account_ids) for _ in range(contacts)]
    contact_ids = _create(crm, "contact", contact_rows)

    lead_rows = [_lead(factory, reps) for _ in range(max(contacts // 4, 1))]
    lead_ids = _create(crm, "lead", lead_rows)
    converted = lead_ids[: max(len(lead_ids) // 5, 1)]
    converted_deals = []
    for index, lead_id in enumerate(converted):
        conversion = crm.leads.convert(lead_id, create_deal=index % 2 == 0)
        if conversion.deal_id is not None:
            converted_deals.append(conversion.deal_id)

    deal_count = max(contacts // 5, 1)
    accounts_by_id = dict(zip(account_ids, account_rows, strict=True))
    deal_rows = [
        _deal(factory, contact_rows, contact_ids, accounts_by_id) for _ in range(deal_count)
    ]
    deal_ids = _create(crm, "deal", deal_rows)
    moves = _move_deals(crm, factory, [*deal_ids, *converted_deals], stages)

    activity_rows = [
        _activity(factory, contact_rows[i], contact_ids[i])
        for i in range(contacts)
        for _ in range(factory.random.randint(1, 3))
    ]
    activity_count = len(_create(crm, "activity", activity_rows))
    task_rows = [
        _task(factory, contact_rows[i], contact_ids[i])
        for i in factory.random.sample(range(contacts), max(contacts // 3, 1))
    ]
    task_count = len(_create(crm, "task", task_rows))

    crm.host.call("crmkit_demo_data", crm=crm)
    return DemoSummary(
        teams=len(DEMO_TEAMS),
        users=len(users),
        pipeline=pipeline_name,
        accounts=len(account_ids) + len(converted),
        contacts=len(contact_ids) + len(converted),
        leads=len(lead_ids),
        converted_leads=len(converted),
        deals=len(deal_ids) + len(converted_deals),
        stage_moves=moves,
        activities=activity_count,
        tasks=task_count,
    )


def _refuse_if_loaded(crm: CRM) -> None:
    if demo_data_loaded(crm):
        raise CRMError(
            f"the demo data is already loaded (team {DEMO_ROOT_TEAM!r} exists): load it into"
            " a fresh database, e.g. crmkit --config demo2.toml init && crmkit --config"
            " demo2.toml demo"
        )
    usernames = [username for username, *_ in DEMO_USERS]
    with crm.transaction(write=False) as op:
        taken = list(op.session.scalars(select(User.username).where(User.username.in_(usernames))))
    if taken:
        raise CRMError(f"cannot load the demo data: user {taken[0]!r} exists; use a fresh database")


def _pipeline(crm: CRM) -> tuple[str, list[Stage]]:
    pipelines = crm.pipelines.all()
    default = next((p for p in pipelines if p.is_default), None)
    if default is None:
        default = crm.pipelines.create("Sales", DEFAULT_STAGES, default=True)
    return default.name, crm.pipelines.stages(default.id)


def _create(crm: CRM, entity: str, rows: Iterable[Mapping[str, object]]) -> list[int]:
    result = crm.records(entity).create_many(enumerate(rows, start=1), all_or_nothing=True)
    return result.ids


def _owner(factory: _DemoFactory, reps: Sequence[User]) -> dict[str, object]:
    rep = factory.pick(reps)
    return {"owner_id": rep.id, "team_id": rep.team_id}


def _account(factory: _DemoFactory, reps: Sequence[User]) -> dict[str, object]:
    city = factory.pick(_CITIES)
    name, industry, domain = factory.company(city)
    return {
        "name": name,
        "industry": industry,
        "website": f"https://www.{domain}",
        "phone": factory.landline(city),
        "email": f"info@{domain}",
        "address": factory.address(city),
        "city": city.name,
        "region": city.region,
        "country": city.country,
        "postal_code": city.postal_code or None,
        "lifecycle_stage": factory.pick(tuple(LifecycleStage)).value,
        "value_tier": factory.pick(_TIERS),
        "source_channel": factory.pick(_SOURCES),
        **_owner(factory, reps),
    }


def _contact(
    factory: _DemoFactory, accounts: Sequence[Mapping[str, object]], account_ids: Sequence[int]
) -> dict[str, object]:
    index = factory.random.randrange(len(accounts))
    account = accounts[index]
    country = str(account["country"])
    full, family, given, local = factory.person(country)
    domain = str(account["website"]).removeprefix("https://www.")
    email = factory.pick(
        (
            f"{local}@{domain}",
            f"{local}@{domain}".upper(),
            f"{factory.digits(9)}@qq.com",
            f"{local}{factory.digits(2)}@163.com",
        )
    )
    values: dict[str, object] = {
        "full_name": full,
        "family_name": family,
        "given_name": given,
        "title": factory.pick(_TITLES),
        "account_id": account_ids[index],
        "email": email,
        "phone": factory.mobile(country),
        "extra_phones": [str(account["phone"])],
        "lifecycle_stage": account["lifecycle_stage"],
        "value_tier": account["value_tier"],
        "source_channel": account["source_channel"],
        "city": account["city"],
        "region": account["region"],
        "country": country,
        "address": account["address"],
        "owner_id": account["owner_id"],
        "team_id": account["team_id"],
    }
    if factory.random.random() < 0.4:
        values["social"] = {"wechat": f"wxid_{factory.digits(8)}"}
        if country != "CN":
            values["social"] = {"line": local.lower(), "whatsapp": factory.mobile(country)}
    if factory.random.random() < 0.3:
        values["birthday"] = dt.date(
            factory.random.randint(1960, 1998),
            factory.random.randint(1, 12),
            factory.random.randint(1, 28),
        )
    return values


def _lead(factory: _DemoFactory, reps: Sequence[User]) -> dict[str, object]:
    city = factory.pick(_CITIES)
    full, _, _, local = factory.person(city.country)
    company, _, domain = factory.company(city)
    return {
        "full_name": full,
        "company_name": company,
        "title": factory.pick(_TITLES),
        "email": f"{local}@{domain}",
        "phone": factory.mobile(city.country),
        "status": factory.pick((LeadStatus.NEW, LeadStatus.WORKING, LeadStatus.QUALIFIED)).value,
        "source_channel": factory.pick(_SOURCES),
        "inquiry": factory.pick(_INQUIRIES),
        "city": city.name,
        "region": city.region,
        "country": city.country,
        "address": factory.address(city),
        **_owner(factory, reps),
    }


def _deal(
    factory: _DemoFactory,
    contacts: Sequence[Mapping[str, object]],
    contact_ids: Sequence[int],
    accounts_by_id: Mapping[int, Mapping[str, object]],
) -> dict[str, object]:
    index = factory.random.randrange(len(contacts))
    contact = contacts[index]
    account_id = contact["account_id"]
    account = accounts_by_id[int(str(account_id))]
    short_name = str(account["name"])[:12]
    amount = decimal.Decimal(factory.random.randrange(5_000, 2_000_000, 500))
    return {
        "name": f"{factory.pick(_DEAL_NAMES)} – {short_name}",
        "account_id": account_id,
        "contact_id": contact_ids[index],
        "amount": amount,
        "currency": _CURRENCY.get(str(account["country"]), "CNY"),
        "expected_close_date": (
            factory.now + dt.timedelta(days=factory.random.randint(-30, 120))
        ).date(),
        "owner_id": contact["owner_id"],
        "team_id": contact["team_id"],
    }


def _move_deals(
    crm: CRM, factory: _DemoFactory, deal_ids: Sequence[int], stages: Sequence[Stage]
) -> int:
    """Walk about two thirds of the deals forward through the stages, closing some."""
    open_stages = [stage for stage in stages if stage.kind == StageKind.OPEN]
    closing = [stage for stage in stages if stage.kind != StageKind.OPEN]
    moves = 0
    for deal_id in deal_ids:
        if factory.random.random() < 0.35:
            continue
        path = open_stages[1 : factory.random.randint(2, len(open_stages))]
        if closing and factory.random.random() < 0.3:
            path.append(factory.pick(closing))
        for stage in path:
            crm.deals.move_to_stage(deal_id, stage.id)
            moves += 1
    return moves


def _activity(
    factory: _DemoFactory, contact: Mapping[str, object], contact_id: int
) -> dict[str, object]:
    kind, subject, body, request, watch = factory.pick(_ACTIVITIES)
    occurred = factory.moment(days_back=90)
    values: dict[str, object] = {
        "kind": kind.value,
        "subject": subject,
        "body": body,
        "customer_request": request or None,
        "watch_points": watch,
        "occurred_at": occurred,
        "contact_id": contact_id,
        "account_id": contact["account_id"],
        "owner_id": contact["owner_id"],
        "team_id": contact["team_id"],
    }
    if kind in (ActivityKind.CALL, ActivityKind.MEETING, ActivityKind.VISIT):
        values["duration_minutes"] = factory.pick((10, 15, 30, 45, 60, 90))
    if factory.random.random() < 0.4:
        values["next_follow_up_at"] = occurred + dt.timedelta(days=factory.random.randint(3, 21))
    return values


def _task(
    factory: _DemoFactory, contact: Mapping[str, object], contact_id: int
) -> dict[str, object]:
    due = factory.moment(days_back=14, days_forward=30)
    done = due < factory.now and factory.random.random() < 0.6
    return {
        "title": factory.pick(_TASKS),
        "description": f"跟进 {contact['full_name']}",
        "due_at": due,
        "status": (TaskStatus.DONE if done else TaskStatus.OPEN).value,
        "completed_at": due if done else None,
        "priority": factory.random.randint(0, 3),
        "contact_id": contact_id,
        "account_id": contact["account_id"],
        "owner_id": contact["owner_id"],
        "team_id": contact["team_id"],
    }


__all__ = ["DEMO_ROOT_TEAM", "DemoSummary", "demo_data_loaded", "load_demo_data"]
