"""Tools as the answer's stages see them, and the runner protocol bot/tools implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from botbuilder.core import TurnContext

Rule = Literal["auto", "ask"]  # runs at once, or only after the user approves


@dataclass(frozen=True)
class ToolSpec:
    """One tool of one server: what routing and the prompt need."""

    server: str
    name: str
    description: str
    input_schema: dict[str, Any]
    read_only: bool
    rule: Rule

    @property
    def required(self) -> list[str]:
        return list(self.input_schema.get("required", []))

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self.input_schema.get("properties", {}))


@dataclass(frozen=True)
class ToolCall:
    tool: ToolSpec
    arguments: dict[str, Any]


@dataclass
class ToolOutcome:
    """What a call gave: `status` "ok", "error" (the tool said so), "unavailable" (its server
    is down or died), "timeout", "pending" (waits for approval) or "rejected"."""

    status: str
    text: str = ""
    approval_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class ToolRunner(Protocol):
    """The tools of the configured MCP servers, with their approval rules and audit."""

    def tools(self) -> list[ToolSpec]:
        """The tools of the servers that are up now."""
        ...

    def down(self) -> list[str]:
        """The names of the configured servers that are down now."""
        ...

    async def run(self, turn_context: TurnContext, call: ToolCall) -> ToolOutcome:
        """Run `call` if its rule lets it run at once (audited); else store a pending approval,
        send the user the approval question and return a "pending" outcome."""
        ...

    async def answer_approval(
        self, turn_context: TurnContext, yes: bool, approval_id: str | None = None
    ) -> ToolOutcome | None:
        """The user's typed yes/no to the approval `approval_id` (the question just asked), else
        to the conversation's latest pending one; None when it is not this user's to answer."""
        ...
