"""Business-card accuracy and speed: ``python bench/cards_bench.py --seed 1 --count 60``.

Generates ``count`` photographed cards from ``seed`` (crmkit_cardscan.cardset: Simplified,
Traditional, English and bilingual layouts; rotation, perspective, light, blur, noise, JPEG;
a vCard/MeCard QR code on some), reads each with the chosen engines, and prints per-field
accuracy (exact match after normalisation), seconds per card and peak memory. ``naive`` is
plain Tesseract on the whole image with the same parser: no QR, no deskew, no contrast.

Each engine runs in its own process (``--engine`` once per run), so peak memory (ru_maxrss)
is that engine's alone. Seed 1 is the development set the parser was tuned on; report seed 2
(never tuned on) beside it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "plugins"))

from crmkit_cardscan import images  # noqa: E402
from crmkit_cardscan.cardset import generate  # noqa: E402
from crmkit_cardscan.engines import RapidOcrEngine, TesseractEngine  # noqa: E402
from crmkit_cardscan.parsing import normalise_linkedin, parse_card  # noqa: E402
from crmkit_cardscan.reading import read_card  # noqa: E402

import crmkit  # noqa: E402

FIELDS = ("name", "title", "company", "email", "phone", "website", "address")
#: Scored only on the cards that print them (the set's share: about a quarter of the
#: Chinese and bilingual cards carry a WeChat ID, a third of the English and bilingual
#: ones a LinkedIn profile); their accuracy is over those cards.
SOCIAL = ("wechat", "linkedin")


def _plain(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in text if ch.isalnum() or ch in "@")


def _phone(text: str | None, region: str) -> str | None:
    if not text:
        return None
    try:
        return crmkit.normalise_phone(text, region).split(";")[0]
    except ValueError:
        return None


def _site(text: str) -> str:
    text = text.lower().strip().rstrip("/")
    for prefix in ("https://", "http://"):
        text = text.removeprefix(prefix)
    return text.removeprefix("www.")


def score(truth: dict[str, Any], fields: dict[str, crmkit.CardField]) -> dict[str, bool]:
    """Which fields were read right (normalised exact match)."""

    def got(name: str) -> str:
        entry = fields.get(name)
        return entry.value if entry else ""

    region = truth["region"]
    return {
        "name": _plain(got("full_name")) == _plain(truth["full_name"]),
        "title": _plain(got("title")) == _plain(truth["title"]),
        "company": _plain(got("company")) == _plain(truth["company"]),
        "email": got("email").lower() == truth["email"].lower(),
        "phone": _phone(got("mobile"), region) == _phone(truth["mobile"], region),
        "website": _site(got("website")) == _site(truth["website"]),
        "address": _plain(got("address")) == _plain(truth["address"]),
    } | {
        name: _social(name, got(name)) == _social(name, truth[name])
        for name in SOCIAL
        if truth.get(name)
    }


def _social(name: str, text: str) -> str:
    if name == "linkedin":
        return normalise_linkedin(text) or text
    return text.replace(" ", "").casefold()


class CachedEngine:
    """An engine whose answers are kept on disk by card number (for parser work)."""

    def __init__(self, engine: Any, folder: Path) -> None:
        self.engine, self.folder, self.index = engine, folder, 0
        self.name = engine.name
        folder.mkdir(parents=True, exist_ok=True)

    def read(self, image: Any) -> list[crmkit.OcrLine]:
        path = self.folder / f"{self.index}.json"
        if path.exists():
            rows = json.loads(path.read_text("utf-8"))
        else:
            lines = self.engine.read(image)
            rows = [[line.text, list(line.box), line.confidence] for line in lines]
            path.write_text(json.dumps(rows, ensure_ascii=False), "utf-8")
        return [crmkit.OcrLine(text, box, confidence) for text, box, confidence in rows]


def naive_read(engine: TesseractEngine, image: Any, region: str) -> dict[str, crmkit.CardField]:
    """Plain Tesseract on the whole image, then the same parser (no QR, no preparation)."""
    return parse_card(list(engine.read(image)), region)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--engine", choices=("rapidocr", "tesseract", "naive"), default="rapidocr")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads (rapidocr)")
    parser.add_argument("--qr-share", type=float, default=0.3)
    parser.add_argument("--show-errors", action="store_true", help="print each wrong field")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument(
        "--ocr-cache",
        type=Path,
        help="keep each card's OCR lines here and reuse them (parser work only; no timing)",
    )
    arguments = parser.parse_args()
    # One card at a time: the set is never all in memory, so the peak memory is the
    # pipeline's, whatever --count is; the clock runs only while a card is read.
    cards = generate(arguments.seed, arguments.count, qr_share=arguments.qr_share)
    first = next(cards)
    engine: Any = (
        RapidOcrEngine(threads=arguments.threads)
        if arguments.engine == "rapidocr"
        else TesseractEngine()
    )
    cached = None
    if arguments.ocr_cache:
        cached = CachedEngine(engine, arguments.ocr_cache / f"{arguments.engine}-{arguments.seed}")
    if arguments.engine == "rapidocr" and not (cached and (cached.folder / "1.json").exists()):
        engine.read(images.prepare_for_reading(first[0]))  # load the models before the clock
    if cached:
        engine = cached
    right = dict.fromkeys(FIELDS + SOCIAL, 0)
    carrying = dict.fromkeys(SOCIAL, 0)  # cards that print the field
    load_before = os.getloadavg()[0]
    elapsed = 0.0
    total = 0
    per_kind: dict[str, list[int]] = {}
    for index, (image, truth) in enumerate(itertools.chain([first], cards), start=1):
        total += 1
        if isinstance(engine, CachedEngine):
            engine.index = index
        started = time.perf_counter()
        if arguments.engine == "naive":
            fields = naive_read(engine, image, truth["region"])
        else:
            fields = dict(read_card(image, engine, region=truth["region"]).fields)
        elapsed += time.perf_counter() - started
        del image
        result = score(truth, fields)
        kind = per_kind.setdefault(truth["kind"], [0, 0])
        kind[0] += sum(result[name] for name in FIELDS)  # (the social fields apart)
        kind[1] += len(FIELDS)
        for name, ok in result.items():
            right[name] += ok
            if name in carrying:
                carrying[name] += 1
            if not ok and arguments.show_errors:
                key = {"name": "full_name", "phone": "mobile"}.get(name, name)
                found = fields.get(key)
                print(
                    f"card {index} ({truth['kind']}{', qr' if truth.get('qr') else ''})"
                    f" {name}: want {truth[key]!r} got {found.value if found else None!r}",
                    file=sys.stderr,
                )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    accuracy = {
        name: round(count / (carrying.get(name, total) or 1), 3) for name, count in right.items()
    }
    summary = {
        "engine": arguments.engine,
        "seed": arguments.seed,
        "cards": total,
        "threads": arguments.threads,
        "seconds_per_card": round(elapsed / total, 3),
        "peak_mib": round(peak_mib),
        "accuracy": accuracy,
        "social_cards": carrying,
        "load": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "by_kind": {k: round(v[0] / v[1], 3) for k, v in sorted(per_kind.items())},
    }
    if arguments.json:
        print(json.dumps(summary))
    else:
        print(json.dumps(summary, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
