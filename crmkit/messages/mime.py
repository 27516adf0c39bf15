"""The bytes of an outgoing e-mail, written directly (RFC 5322, MIME, RFC 2047).

The e-mail channel sends thousands of mails a minute in a campaign; building each one as an
``email.message.EmailMessage`` and flattening it parsed and refolded every header twice and
took most of the time of a send (see "Campaign e-mail" in docs/benchmarks.md). The mails
crmkit sends have one fixed shape, so they are written here in one pass:

* header values with no line breaks (a CR or LF in a value becomes a space: no header
  injection through a rendered subject); an ASCII value is written as it is (folded at
  spaces past 78 characters, never inside a word: a ``List-Unsubscribe`` URL stays one
  ``<...>`` token, as RFC 2369 readers expect), a value with other characters (or with
  ``=?``) as RFC 2047 encoded words (UTF-8, base64, at most 75 characters each);
* the body as ``text/plain; charset="utf-8"``: 7bit when it is ASCII in lines of at most 78
  characters, base64 otherwise; with an HTML version, a ``multipart/alternative`` of the two
  (both base64, so the boundary cannot occur in them);
* CRLF line ends throughout, as SMTP sends them.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping

#: Lines longer than this are folded (headers) or the body is base64 encoded.
LINE = 78
#: UTF-8 bytes per encoded word: ``=?utf-8?b?`` + base64 of 42 bytes (56) + ``?=`` = 68
#: characters, so that ``Subject:`` and the first word fit in 78.
WORD_BYTES = 42
CRLF = "\r\n"


def one_line(value: str) -> str:
    """``value`` with every line break turned into a space."""
    return " ".join(value.splitlines()) if ("\n" in value or "\r" in value) else value


def encoded_words(value: str) -> list[str]:
    """``value`` as RFC 2047 encoded words (UTF-8, base64), characters never split."""
    words: list[str] = []
    chunk = bytearray()
    for character in value:
        data = character.encode()
        if len(chunk) + len(data) > WORD_BYTES:
            words.append(_word(bytes(chunk)))
            chunk.clear()
        chunk += data
    if chunk:
        words.append(_word(bytes(chunk)))
    return words


def _word(data: bytes) -> str:
    return f"=?utf-8?b?{base64.b64encode(data).decode()}?="


def header(name: str, value: str, *, raw: bool = False) -> str:
    """One header field, folded, with its CRLF. ``raw``: the value is written as it is
    (address headers: already encoded by :func:`display_address`, or an address, which is
    UTF-8 only under SMTPUTF8), never as encoded words."""
    value = one_line(value)
    if (value.isascii() and "=?" not in value) or raw:  # "=?" would read as an encoded word
        words = value.split(" ")
    else:
        words = encoded_words(value)
    lines: list[str] = []
    line = f"{name}:"
    for word in words:
        if word and len(line) + 1 + len(word) > LINE and line != f"{name}:":
            lines.append(line)
            line = ""
        line = f"{line} {word}"
    lines.append(line)
    return CRLF.join(lines) + CRLF


def display_address(name: str, address: str) -> str:
    """``Name <address>`` (the name quoted or encoded as needed); the bare address without
    a name."""
    if not name:
        return address
    if not name.isascii():
        return f"{' '.join(encoded_words(name))} <{address}>"
    if any(character in name for character in '()<>@,;:\\".[]'):
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}" <{address}>'
    return f"{name} <{address}>"


def _text_part(text: str, subtype: str, *, allow_7bit: bool) -> str:
    # line ends normalised and a final one added, as ``EmailMessage.set_content`` does
    lines = text.encode().splitlines()
    if allow_7bit and text.isascii() and all(len(line) <= LINE for line in lines):
        encoding, content = "7bit", CRLF.join(line.decode() for line in lines) + CRLF
    else:
        data = b"\n".join(lines) + b"\n"
        encoding, content = "base64", base64.encodebytes(data).decode().replace("\n", CRLF)
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}'
        f"Content-Transfer-Encoding: {encoding}{CRLF}{CRLF}{content}"
    )


def email_bytes(
    *,
    sender: str,
    to: str,
    subject: str,
    date: str,
    message_id: str,
    body: str,
    html: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """The e-mail, ready for SMTP ``DATA``. ``sender`` is the ``From`` value (see
    :func:`display_address`), ``to`` the address (UTF-8 when it is not ASCII: send it
    with SMTPUTF8)."""
    parts = [
        header("From", sender, raw=True),
        header("To", to, raw=True),
        header("Subject", subject),
        header("Date", date),
        header("Message-ID", message_id),
    ]
    parts.extend(header(name, value) for name, value in (headers or {}).items())
    parts.append(f"MIME-Version: 1.0{CRLF}")
    if html is None:
        parts.append(_text_part(body, "plain", allow_7bit=True))
    else:
        boundary = f"=_crmkit_{hashlib.sha256(message_id.encode()).hexdigest()[:24]}"
        parts.append(
            f'Content-Type: multipart/alternative; boundary="{boundary}"{CRLF}{CRLF}'
            f"--{boundary}{CRLF}{_text_part(body, 'plain', allow_7bit=False)}"
            f"--{boundary}{CRLF}{_text_part(html, 'html', allow_7bit=False)}"
            f"--{boundary}--{CRLF}"
        )
    return "".join(parts).encode()
