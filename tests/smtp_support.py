"""A real SMTP server for the e-mail tests (aiosmtpd, in a thread of the test process).

``smtp_server`` yields a :class:`MailServer`: the messages it accepted, and knobs to make it
refuse for a while (a temporary failure, 451) or refuse some addresses for good (550)."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller


class MailServer:
    """What the SMTP server received and how it should answer."""

    def __init__(self) -> None:
        self.received: list[EmailMessage] = []
        self.refuse_next = 0  # answer 451 to the next N messages
        self.unknown: set[str] = set()  # answer 550 for these recipients
        self.host = "127.0.0.1"
        self.port = 0
        self._lock = threading.Lock()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.lower() in self.unknown:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            if self.refuse_next > 0:
                self.refuse_next -= 1
                return "451 4.3.0 try again later"
            parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.received.append(parsed)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        """The messages accepted for ``address``."""
        return [m for m in self.received if m["To"] == address]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[MailServer]:
    """A running SMTP server on a free local port."""
    server = MailServer()
    server.port = free_port()
    controller = Controller(server, hostname=server.host, port=server.port)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()
