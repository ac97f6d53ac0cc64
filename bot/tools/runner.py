"""The tool runner the answer's tool stage calls (dialogs.tools.api.ToolRunner): the tools of the
servers that are up, each call run at once or sent for approval by its rule, limited in time and
size, and audited."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from botbuilder.core import TurnContext
from mcp.types import CallToolResult, TextContent

from bot.tools.approvals import PendingApprovals
from bot.tools.audit import NOT_RUN, AuditLog, monotonic_ms
from bot.tools.cards import approval_activity, plain_words
from bot.tools.rules import spec_of
from bot.tools.servers import McpServers, ServerDown
from dialogs.memory.user_store import USER_IDENTITY_KEY
from dialogs.tools.api import ToolCall, ToolOutcome, ToolSpec

logger = logging.getLogger(__name__)


def caller_of(turn_context: TurnContext) -> tuple[str, str]:
    """(conversation id, user): the identity the channel vouches for, else channel/from id."""
    activity = turn_context.activity
    conversation = activity.conversation.id if activity.conversation else ""
    user = turn_context.turn_state.get(USER_IDENTITY_KEY)
    if not user:
        sender = activity.from_property.id if activity.from_property else ""
        user = f"{activity.channel_id}/from/{sender}"
    return conversation, str(user)


def result_text(result: CallToolResult, max_chars: int) -> str:
    texts = [block.text for block in result.content if isinstance(block, TextContent)]
    text = "\n".join(texts) or ("(no text)" if not result.structured_content else "")
    if not texts and result.structured_content:
        text = str(result.structured_content)
    return text if len(text) <= max_chars else text[:max_chars] + " …(cut)"


class McpToolRunner:
    def __init__(
        self,
        servers: McpServers,
        approvals: PendingApprovals,
        audit: AuditLog,
        *,
        result_chars: int = 2000,
    ) -> None:
        self.servers = servers
        self.approvals = approvals
        self.audit = audit
        self.result_chars = result_chars

    def tools(self) -> list[ToolSpec]:
        return [
            spec_of(c.config, tool)
            for c in self.servers.connections.values()
            if c.up
            for tool in c.tools
        ]

    def down(self) -> list[str]:
        return sorted(self.servers.down())

    async def run(self, turn_context: TurnContext, call: ToolCall) -> ToolOutcome:
        conversation, user = caller_of(turn_context)
        spec = call.tool
        if spec.rule == "auto":
            return await self.execute(
                conversation, user, spec.server, spec.name, call.arguments, "not needed"
            )
        record = await self.approvals.create(
            conversation=conversation,
            user=user,
            server=spec.server,
            tool=spec.name,
            arguments=call.arguments,
            summary=plain_words(spec.description, call.arguments, spec.input_schema),
        )
        await turn_context.send_activity(
            approval_activity(record, turn_context.activity.channel_id)
        )
        return ToolOutcome("pending", approval_id=record["id"])

    async def execute(
        self,
        conversation: str,
        user: str,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        approval: str,
    ) -> ToolOutcome:
        """Run the call now (its approval already settled) and audit it."""
        start = time.monotonic()
        connection = self.servers.connections.get(server)
        try:
            if connection is None:
                raise ServerDown(server)
            result = await connection.call(tool, arguments, connection.config.timeout_s)
            text = result_text(result, self.result_chars)
            outcome = ToolOutcome("error" if result.is_error else "ok", text)
        except ServerDown:
            outcome = ToolOutcome("unavailable", f"the {server} tools are not available now")
        except TimeoutError:
            outcome = ToolOutcome("timeout", f"{tool} took too long")
        except Exception as error:  # a protocol error the server answered
            logger.warning("tool %s/%s failed: %s", server, tool, type(error).__name__)
            outcome = ToolOutcome("error", f"{tool} failed")
        self.audit.record(
            conversation=conversation,
            user=user,
            server=server,
            tool=tool,
            arguments=arguments,
            approval=approval,
            outcome=outcome.status,
            duration_ms=monotonic_ms(start),
        )
        return outcome

    async def decide(
        self, approval_id: str, user: str, approve: bool
    ) -> tuple[str, dict[str, Any], ToolOutcome | None]:
        """A press of approve/reject: (claim result, the approval, the outcome when it ran).
        The approval is finished however the call or its audit ends."""
        claim = await self.approvals.claim(approval_id, user, approve)
        record = claim.record
        if claim.result == "rejected":
            await self.approvals.finish(record, "rejected", "Rejected: it was not run.")
            self.audit.record(
                conversation=record["conversation"],
                user=user,
                server=record["server"],
                tool=record["tool"],
                arguments=record["arguments"],
                approval="rejected",
                outcome=NOT_RUN,
                duration_ms=0.0,
            )
        if claim.result != "run":
            return claim.result, record, None
        outcome = ToolOutcome("error", f"{record['tool']} failed")
        try:
            outcome = await self.execute(
                record["conversation"],
                user,
                record["server"],
                record["tool"],
                record["arguments"],
                "approved",
            )
        finally:  # whatever happened after the call: it is settled, and never runs again
            await self.approvals.finish(record, "done", outcome.text)
        return "run", record, outcome

    async def answer_approval(
        self, turn_context: TurnContext, yes: bool, approval_id: str | None = None
    ) -> ToolOutcome | None:
        conversation, user = caller_of(turn_context)
        if approval_id is not None:
            record = await self.approvals.get(approval_id)
        else:
            record = await self.approvals.latest(conversation)
        if record is None or record["user"] != user or record["conversation"] != conversation:
            return None
        result, record, outcome = await self.decide(record["id"], user, yes)
        outcome = outcome or ToolOutcome(result, record.get("outcome", ""))
        outcome.meta.update(tool=record["tool"], server=record["server"])
        return outcome

    async def wait_ready(self, timeout_s: float) -> None:
        await asyncio.wait_for(self.servers.wait_tried(timeout_s), timeout_s + 1)
