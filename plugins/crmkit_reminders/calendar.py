"""Birthdays (Gregorian and Chinese lunar, leap months included) and holidays, from
lunar-python: its calendar tables and festival lists, not a hand-written table.

* A **Gregorian birthday** on 29 February is kept on 28 February in common years.
* A **lunar birthday** is the lunar month and day of the birth date. A person born in a leap
  month (闰月) celebrates in that leap month in the years that have it, and in the ordinary
  month of the same number otherwise (the usual practice); a 30th day in a month of 29 days
  falls on the 29th.
* A **holiday** is named as lunar-python names festivals (``春节``, ``中秋节``, ``国庆节``,
  ``圣诞节`` ...), by an English alias (``spring_festival``, ``mid_autumn`` ...), or as a date:
  ``12-25`` (Gregorian) or ``lunar:08-15``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from lunar_python import Lunar, LunarMonth, LunarYear, Solar

import crmkit

#: English names of the festivals lunar-python knows by their Chinese names.
ALIASES = {
    "new_year": "元旦节",
    "new_years_eve": "除夕",
    "spring_festival": "春节",
    "lantern": "元宵节",
    "qingming": "清明",
    "labour_day": "劳动节",
    "dragon_boat": "端午节",
    "qixi": "七夕节",
    "mid_autumn": "中秋节",
    "national_day": "国庆节",
    "double_ninth": "重阳节",
    "christmas": "圣诞节",
    "valentines": "情人节",
    "womens_day": "妇女节",
    "childrens_day": "儿童节",
    "teachers_day": "教师节",
    "laba": "腊八节",
}


def gregorian_birthday(birth: dt.date, year: int) -> dt.date:
    """The birthday in ``year`` (29 February → 28 February in common years)."""
    try:
        return birth.replace(year=year)
    except ValueError:
        return dt.date(year, 2, 28)


def lunar_of(birth: dt.date) -> tuple[int, int]:
    """The lunar ``(month, day)`` of a Gregorian date; a leap month is negative."""
    lunar = Solar.fromYmd(birth.year, birth.month, birth.day).getLunar()
    return int(lunar.getMonth()), int(lunar.getDay())


def lunar_birthday(month: int, day: int, lunar_year: int) -> dt.date:
    """The Gregorian date of lunar ``month``/``day`` (negative month: leap) in
    ``lunar_year``, with the leap-month and short-month rules of the module docstring."""
    number = abs(month)
    chosen = number
    if month < 0 and LunarYear.fromYear(lunar_year).getLeapMonth() == number:
        chosen = -number
    days = LunarMonth.fromYm(lunar_year, chosen).getDayCount()
    solar = Lunar.fromYmd(lunar_year, chosen, min(day, days)).getSolar()
    return dt.date(solar.getYear(), solar.getMonth(), solar.getDay())


def birthdays_between(
    birth: dt.date, calendar: str, first: dt.date, last: dt.date
) -> Iterator[dt.date]:
    """Each birthday (Gregorian or lunar) from ``first`` to ``last`` inclusive."""
    if calendar == "lunar":
        month, day = lunar_of(birth)
        for lunar_year in range(first.year - 1, last.year + 1):
            if lunar_year <= birth.year:
                continue
            when = lunar_birthday(month, day, lunar_year)
            if first <= when <= last:
                yield when
        return
    for year in range(first.year, last.year + 1):
        when = gregorian_birthday(birth, year)
        if first <= when <= last and year > birth.year:
            yield when


def festivals_on(day: dt.date) -> set[str]:
    """Every festival lunar-python lists on ``day`` (Gregorian and lunar, main and other)."""
    solar = Solar.fromYmd(day.year, day.month, day.day)
    lunar = solar.getLunar()
    names = [*solar.getFestivals(), *solar.getOtherFestivals()]
    names += [*lunar.getFestivals(), *lunar.getOtherFestivals()]
    return {str(name) for name in names}


def check_holiday(name: str) -> str:
    """The canonical form of a holiday name; a clear error when it is none we know."""
    text = name.strip()
    if text in ALIASES:
        return ALIASES[text]
    if text.startswith("lunar:"):
        month, _, day = text[6:].partition("-")
        if month.isdigit() and day.isdigit() and 1 <= int(month) <= 12 and 1 <= int(day) <= 30:
            return text
    elif len(text) == 5 and text[2] == "-" and text.replace("-", "").isdigit():
        try:
            dt.date(2024, int(text[:2]), int(text[3:]))
        except ValueError:
            pass
        else:
            return text
    else:
        known = set()
        start = dt.date(2026, 1, 1)
        for offset in range(366):
            known |= festivals_on(start + dt.timedelta(days=offset))
        if text in known:
            return text
    raise crmkit.ValidationError(
        [
            crmkit.FieldError(
                "holiday",
                f"unknown holiday {name!r}: use a festival name (春节, 中秋节, 国庆节, 圣诞节 ...),"
                f" an alias ({', '.join(sorted(ALIASES)[:6])} ...), MM-DD or lunar:MM-DD",
            )
        ]
    )


def is_holiday(name: str, day: dt.date) -> bool:
    """Whether ``day`` is the holiday ``name`` (canonical, from :func:`check_holiday`)."""
    if name.startswith("lunar:"):
        month, _, date = name[6:].partition("-")
        lunar = Solar.fromYmd(day.year, day.month, day.day).getLunar()
        return bool(lunar.getMonth() == int(month) and lunar.getDay() == int(date))
    if len(name) == 5 and name[2] == "-":
        return day.strftime("%m-%d") == name
    return name in festivals_on(day)
