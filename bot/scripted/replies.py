"""Scripted model replies, listed beside a script: `greeting.chat` → `greeting.replies`.

One reply per line, in the order the bot asks the model. Blank lines and lines starting with
`#` are skipped. A line starting with `"` is a JSON string, for replies with newlines, outer
spaces, a leading `#` or no text at all: `"Two lines:\\nlike this"`, `""`.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path

from bot.scripted.errors import ScriptError
from models import ChatMessage, GenerationParams, ModelError
from models.fake import FakeChatModel

SUFFIX = ".replies"


class RepliesExhausted(ModelError):
    """The bot asked the model for more replies than the replies file lists."""


def replies_path(script: Path) -> Path:
    """Where the replies for `script` are listed."""
    return script.with_suffix(SUFFIX)


def read_replies(path: Path) -> list[str]:
    """The replies listed in `path`; ScriptError (file:line) for a malformed JSON line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ScriptError(path, None, f"cannot read the scripted replies: {error}") from None
    replies = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        if not line.startswith('"'):
            replies.append(line)
            continue
        try:
            reply = json.loads(line)
        except json.JSONDecodeError as error:
            raise ScriptError(path, number, f"invalid JSON string: {error.msg}") from None
        if not isinstance(reply, str):
            raise ScriptError(path, number, 'a line starting with " must be one JSON string')
        replies.append(reply)
    return replies


def format_reply(reply: str) -> str:
    """One line for `reply`: itself when it reads back unchanged, else a JSON string."""
    reads_back = reply.splitlines() == [reply] and reply == reply.strip()
    if reads_back and not reply.startswith(("#", '"')):
        return reply
    return json.dumps(reply, ensure_ascii=False)


def write_replies(path: Path, replies: Iterable[str], *, comment: str = "") -> None:
    header = [f"# {line}" for line in comment.splitlines()]
    path.write_text("\n".join([*header, *map(format_reply, replies)]) + "\n", encoding="utf-8")


class ScriptedChatModel(FakeChatModel):
    """Answers with the listed replies in order, each as one piece; then RepliesExhausted.

    Tokens are counted as FakeChatModel counts them; prompts are recorded in `prompts`.
    """

    def __init__(self, replies: Sequence[str], source: Path | None = None) -> None:
        super().__init__()
        self._replies = deque(replies)
        self.source = source
        self.exhausted = False

    @classmethod
    def beside(cls, script: Path) -> ScriptedChatModel:
        """A model answering with the replies beside `script`; ScriptError if there are none."""
        path = replies_path(script)
        if not path.is_file():
            raise ScriptError(script, None, f"--model replies needs {path.name} beside the script")
        return cls(read_replies(path), source=path)

    @property
    def name(self) -> str:
        return "scripted"

    async def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[str]:
        self.prompts.append(list(messages))
        if not self._replies:
            self.exhausted = True
            raise RepliesExhausted(f"{self.source or 'the script'} lists no more replies")
        self.pieces_produced += 1
        yield self._replies.popleft()
