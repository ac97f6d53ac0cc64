"""The two ways a script run ends badly: the script is malformed, or the bot did not follow it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class ScriptError(Exception):
    """A script cannot be read: bad syntax, bad JSON, a file it refers to is missing.

    The message starts with `file:line:` so editors and terminals can jump to it.
    """

    def __init__(self, path: Path | str, line: int | None, reason: str) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {reason}")


class ScriptFailure(AssertionError):
    """The bot's behaviour differs from the script at `path:line`.

    `expected` and `actual` describe the turn as text; `diff` holds ndiff lines for text
    mismatches; `conversation` is the exchange up to and including the failing reply, in
    chatdown form (`user: …` / `bot: …`), ready to paste into a script.
    """

    def __init__(
        self,
        path: Path,
        line: int,
        reason: str,
        *,
        expected: str,
        actual: str,
        diff: Sequence[str] = (),
        conversation: Sequence[str] = (),
        notes: Sequence[str] = (),
    ) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        self.expected = expected
        self.actual = actual
        self.diff = list(diff)
        self.conversation = list(conversation)
        self.notes = list(notes)
        super().__init__(f"{path}:{line}: {reason}")

    def __str__(self) -> str:
        return self.render()

    def render(self) -> str:
        lines = [f"{self.path}:{self.line}: {self.reason}"]
        lines += _labelled("expected: ", self.expected)
        lines += _labelled("actual:   ", self.actual)
        if self.diff:
            lines.append("  diff (- expected, + actual):")
            lines += ["    " + line.rstrip("\n") for line in self.diff]
        lines.append("  conversation up to here:")
        lines += ["    " + line for line in self.conversation] or ["    (nothing was said)"]
        lines += ["  " + note for note in self.notes]
        return "\n".join(line.rstrip() for line in lines)


def _labelled(label: str, text: str) -> list[str]:
    first, *rest = text.split("\n")
    return ["  " + label + first] + ["  " + " " * len(label) + line for line in rest]
