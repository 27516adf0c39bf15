"""The bytes of an outgoing e-mail (crmkit.messages.mime): whatever the subject, names and
body, a standard parser reads back what was given, and no value can add a header."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from hypothesis import given
from hypothesis import strategies as st

from crmkit.messages.mime import display_address, email_bytes

# any text but surrogates (not encodable) and NUL (no mail carries it)
TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=300)
URL = "<https://crm.shop.example/messages/unsubscribe/" + "Y2xpZW50QGV4YW1wbGUuY24" * 4 + ">"


def compose(**given_values: object) -> EmailMessage:
    values: dict[str, object] = {
        "sender": display_address("上海商店", "news@shop.example"),
        "to": "client@example.cn",
        "subject": "hello",
        "date": "Fri, 04 Dec 2026 16:50:27 -0000",
        "message_id": "<abc@shop.example>",
        "body": "body",
        "headers": {"List-Unsubscribe": URL, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        **given_values,
    }
    data = email_bytes(**values)  # type: ignore[arg-type]
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF line ends only
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def words(text: str) -> list[str]:
    """What a reader sees of a header: its words (line breaks and runs of spaces fold)."""
    return " ".join(text.splitlines()).split()


def expected_body(text: str) -> str:
    """The body a reader gets: line ends (CR, LF, CRLF) normalised, a final one added."""
    return b"\n".join(text.encode().splitlines()).decode() + "\n"


@given(subject=TEXT)
def test_any_subject_reads_back_as_one_line(subject: str) -> None:
    mail = compose(subject=subject)

    assert words(str(mail["Subject"])) == words(subject)
    assert list(mail.keys()).count("Subject") == 1


NAME = st.text(st.characters(categories=["L", "N", "P", "S"]) | st.just(" "), max_size=100)


@given(name=NAME)
def test_any_sender_name_reads_back_with_the_address(name: str) -> None:
    mail = compose(sender=display_address(" ".join(name.splitlines()), "news@shop.example"))

    assert mail["From"].addresses[0].addr_spec == "news@shop.example"
    # the standard library's address parser keeps the space between two encoded words
    # (RFC 2047 drops it): compare the characters
    assert "".join(words(mail["From"].addresses[0].display_name)) == "".join(words(name))


@given(body=TEXT, html=st.none() | TEXT)
def test_any_body_reads_back_with_its_html_version(body: str, html: str | None) -> None:
    mail = compose(body=body, html=html)

    if html is None:
        assert mail.get_content().replace("\r\n", "\n") == expected_body(body)
    else:
        plain, rich = mail.iter_parts()
        assert plain.get_content() == expected_body(body)
        assert rich.get_content() == expected_body(html)


def test_a_line_break_in_a_subject_adds_no_header() -> None:
    mail = compose(subject="Hi\r\nBcc: everyone@example.cn\nX-Evil: 1")

    assert "Bcc" not in mail
    assert "X-Evil" not in mail
    assert mail["Subject"] == "Hi Bcc: everyone@example.cn X-Evil: 1"


def test_the_list_unsubscribe_url_is_one_plain_token_however_long() -> None:
    mail = compose()

    assert dict(mail.raw_items())["List-Unsubscribe"] == URL
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert (mail["Message-ID"], mail["To"]) == ("<abc@shop.example>", "client@example.cn")


def test_a_short_ascii_body_goes_as_7bit_a_chinese_one_as_base64() -> None:
    assert compose(body="Hello\n.\nBye")["Content-Transfer-Encoding"] == "7bit"
    assert compose(body="您好")["Content-Transfer-Encoding"] == "base64"
