"""`botloom chat --record FILE.transcript`: a terminal conversation saved for `botloom test`.

The transcript gets every activity in and out, Emulator-style; the model's replies go to
`FILE.replies` beside it, so `botloom test FILE.transcript --model replies` replays the exact
conversation even though a real model's answers vary. A recording starts a new conversation, so
it does not depend on earlier history. Both files are rewritten as the conversation goes on.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from botbuilder.schema import Activity

from bot import app as wiring
from bot.console import chat as console_chat
from bot.scripted.replies import replies_path, write_replies
from bot.scripted.transcript import activity_json, write_transcript
from bot.settings import Settings
from models import ChatMessage, ChatModel, GenerationParams
from models.api import WrappedChatModel


class ConversationRecorder:
    """Collects activities and model replies; saves both files after each one."""

    def __init__(self, transcript: Path) -> None:
        self.transcript = transcript
        self.replies_file = replies_path(transcript)
        self.activities: list[dict[str, Any]] = []
        self.replies: list[str] = []

    def activity(self, activity: Activity) -> None:
        self.activities.append(activity_json(activity))
        write_transcript(self.transcript, self.activities)

    def reply(self, text: str) -> None:
        self.replies.append(text)
        comment = f"the model's replies while {self.transcript.name} was recorded"
        write_replies(self.replies_file, self.replies, comment=comment)


class RecordingChatModel(WrappedChatModel):
    """A ChatModel that passes everything to `inner` and reports each whole reply."""

    def __init__(self, inner: ChatModel, on_reply: Callable[[str], None]) -> None:
        super().__init__(inner)
        self._on_reply = on_reply

    async def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[str]:
        pieces = []
        async for piece in self.inner.stream(messages, params):
            pieces.append(piece)
            yield piece
        self._on_reply("".join(pieces))

    def __getattr__(self, name: str) -> Any:
        # start, ready, wait_ready, close: whatever the inner model's lifecycle offers
        return getattr(self.inner, name)


async def recorded_chat(
    settings: Settings,
    transcript: Path,
    *,
    model: ChatModel | None = None,
    input_stream: TextIO | None = None,
    output: TextIO | None = None,
) -> int:
    """`botloom chat` that records to `transcript`; `model` replaces the configured one (tests)."""
    output = output or sys.stdout
    recorder = ConversationRecorder(transcript)
    try:
        transcript.parent.mkdir(parents=True, exist_ok=True)
        write_transcript(transcript, [])
    except OSError as error:
        print(f"botloom: cannot record to {transcript}: {error.strerror}", file=sys.stderr)
        return 2
    inner = model if model is not None else wiring.build_model(settings)
    runtime = wiring.build_runtime(settings, model=RecordingChatModel(inner, recorder.reply))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    try:
        await console_chat(
            runtime,
            input_stream=input_stream or sys.stdin,
            output=output,
            recorder=recorder.activity,
            conversation_id=f"recording-{stamp}",
        )
    finally:
        await runtime.aclose()
    print(f"Recorded {len(recorder.activities)} activities to {transcript}.", file=output)
    print(f"Replay: botloom test {transcript}", file=output)
    if recorder.replies:
        print(
            f"The model's replies ({len(recorder.replies)}) are in {recorder.replies_file}: "
            "add --model replies to answer with them.",
            file=output,
        )
    return 0
