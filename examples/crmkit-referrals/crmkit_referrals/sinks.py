"""A durable event sink: the relay worker appends contact and referral events to a file.

Any class with ``name``, ``patterns`` and ``deliver(event)`` is a ``crmkit.EventSink``; the
relay worker calls ``deliver`` at least once per event, in order per record, and retries when
it raises. This one writes JSON lines, handy for audits and for feeding a spreadsheet or a
log shipper.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import crmkit


@dataclass
class JsonLinesSink:
    """Appends one JSON object per event (``event.to_json()``) to ``path``.

    Delivery is at least once, so a line may repeat after a retry: readers drop repeats by
    the ``id`` field (the event's idempotency key).
    """

    path: Path
    name: str = "referrals-jsonl"
    patterns: Sequence[str] = ("contact.*", "referral.*")

    def deliver(self, event: crmkit.Event) -> None:
        """Append ``event`` as one line; an I/O error fails the attempt (the relay retries)."""
        line = json.dumps(event.to_json(), ensure_ascii=False, sort_keys=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One write of one whole line in append mode: lines from several workers never
        # interleave mid-line on a local file system.
        with self.path.open("a", encoding="utf-8") as log_file:
            log_file.write(line + "\n")

    def read(self) -> list[dict[str, object]]:
        """Every event written so far, oldest first (for tools and tests)."""
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as log_file:
            return [json.loads(line) for line in log_file if line.strip()]
