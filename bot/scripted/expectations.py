"""How a bot line of a script matches the bot's reply: exact text, a regex, or a wildcard.

- `bot: Hello there` — exact: the reply's text equals it (outer whitespace and line endings
  are ignored).
- `bot: /^fake: .+$/` — a regular expression between slashes, searched in the reply
  (Python `re.search`; anchor it with `^…$` to match the whole reply).
- `bot: fake: *` — a wildcard: `*` stands for any text, also across lines; the rest is literal.
  Write `\\*` for a literal asterisk. Exact text that happens to contain `*` still matches
  itself, so only a leading and trailing slash turns a line into something else than text.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Literal

from botbuilder.schema import Activity, Attachment

_STAR = re.compile(r"\\\*|\*")


def normalize(text: str | None) -> str:
    """Line endings as \\n, no outer whitespace."""
    return (text or "").replace("\r\n", "\n").strip()


@dataclass(frozen=True)
class TextExpectation:
    """What the text of a bot message must be. `written` is the script's text, normalized."""

    kind: Literal["exact", "regex", "wildcard"]
    written: str
    pattern: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, written: str) -> TextExpectation:
        """Read a script's bot text; raises re.error for an invalid `/regex/`."""
        text = normalize(written)
        if len(text) >= 2 and text.startswith("/") and text.endswith("/"):
            return cls("regex", text, re.compile(text[1:-1]))
        if any(star.group() == "*" for star in _STAR.finditer(text)):
            parts = _STAR.split(text)
            stars = _STAR.findall(text)
            regex = re.escape(parts[0])
            for star, part in zip(stars, parts[1:], strict=True):
                regex += (".*" if star == "*" else re.escape("*")) + re.escape(part)
            return cls("wildcard", text, re.compile(regex, re.DOTALL))
        return cls("exact", text.replace("\\*", "*"))

    @classmethod
    def exact(cls, text: str | None) -> TextExpectation:
        """Text taken literally (transcripts record what was said, not patterns)."""
        return cls("exact", normalize(text))

    def matches(self, actual: str | None) -> bool:
        text = normalize(actual)
        if self.kind == "exact":
            return text == self.written
        assert self.pattern is not None
        if self.kind == "regex":
            return self.pattern.search(text) is not None
        return self.pattern.fullmatch(text) is not None

    def describe(self) -> str:
        return self.written if self.kind == "exact" else f"{self.written}  ({self.kind})"

    def diff(self, actual: str | None) -> list[str]:
        """ndiff lines (- expected, + actual) for exact text; none for patterns."""
        if self.kind != "exact":
            return []
        return list(difflib.ndiff(self.written.split("\n"), normalize(actual).split("\n")))


@dataclass(frozen=True)
class AttachmentExpectation:
    """An attachment the bot must send: the fields that are not None must be equal."""

    content_type: str | None = None
    content_url: str | None = None
    name: str | None = None
    content: Any = None

    def describe(self) -> str:
        return _describe(self.content_type, self.content_url, self.name, self.content)

    def matches(self, attachment: Attachment) -> bool:
        return all(
            want is None or want == got
            for want, got in (
                (self.content_type, attachment.content_type),
                (self.content_url, attachment.content_url),
                (self.name, attachment.name),
                (self.content, plain(attachment.content)),
            )
        )


def describe_attachment(attachment: Attachment) -> str:
    """An attachment as a script writes it: `[Attachment contentType=… contentUrl=…]`."""
    return _describe(
        attachment.content_type, attachment.content_url, attachment.name, attachment.content
    )


def _describe(content_type: str | None, url: str | None, name: str | None, content: Any) -> str:
    fields = {"contentType": content_type, "contentUrl": url, "name": name}
    if content is not None:
        fields["content"] = "{…}"
    return "[Attachment " + " ".join(f"{k}={v}" for k, v in fields.items() if v) + "]"


def plain(value: Any) -> Any:
    """Card objects (msrest models) as the JSON a channel receives; other values as they are."""
    serialize = getattr(value, "serialize", None)
    return serialize() if callable(serialize) else value


def invoke_status(activity: Activity) -> int | None:
    """The status of an invokeResponse activity (its value: an InvokeResponse or its JSON)."""
    value = activity.value
    status = value.get("status") if isinstance(value, dict) else getattr(value, "status", None)
    return status if isinstance(status, int) else None


def invoke_text(activity: Activity) -> str:
    """The text an invokeResponse's body shows: a message's `value`, or the TextBlocks of a card
    (one a line); empty for a body without either."""
    value = activity.value
    body = value.get("body") if isinstance(value, dict) else getattr(value, "body", None)
    shown = body.get("value") if isinstance(body, dict) else None
    if isinstance(shown, str):
        return normalize(shown)
    return "\n".join(normalize(text) for text in _text_blocks(shown))


def _text_blocks(node: Any) -> list[str]:
    if isinstance(node, list):
        return [text for item in node for text in _text_blocks(item)]
    if not isinstance(node, dict):
        return []
    own = [str(node.get("text", ""))] if node.get("type") == "TextBlock" else []
    return own + [text for value in node.values() for text in _text_blocks(value)]
