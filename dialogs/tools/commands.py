"""`/tools` in chat: what the user can ask for, and which tools need their approval."""

from __future__ import annotations

from botbuilder.core import TurnContext

from dialogs.tools.api import ToolRunner


def tools_text(runner: ToolRunner) -> str:
    tools = runner.tools()
    lines = [
        f"- {t.description.rstrip('.')} ({t.name}"
        + (", asks for your approval first)" if t.rule == "ask" else ")")
        for t in tools
    ]
    text = "I can use these tools:\n" + "\n".join(lines) if lines else "No tools are available now."
    down = runner.down()
    if down:
        text += f"\n\nNot available right now: the {', '.join(down)} tools."
    return text


class ToolCommands:
    def __init__(self, runner: ToolRunner) -> None:
        self._runner = runner

    async def run(self, turn_context: TurnContext, command: str) -> bool:
        """Answer `/tools`; False for any other command."""
        if command != "/tools":
            return False
        await turn_context.send_activity(tools_text(self._runner))
        return True
