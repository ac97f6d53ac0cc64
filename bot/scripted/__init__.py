"""Scripted conversations: chatdown `.chat` and `.transcript` files replayed against the bot.

`load_script` reads a file into steps (what the user sends, what the bot must answer), each
with its line; `run_script` replays one against production's wiring (`build_runtime`) with
state in memory. A malformed script raises `ScriptError` (file:line); a bot that departs from
the script raises `ScriptFailure` (expected, actual, the conversation so far). The same runner
serves the pytest plugin (`bot.scripted.pytest_plugin`) and `botloom test`. A script's `mcp=`
header gives it MCP servers; it can press a card's button and state the tools that ran.
"""

from bot.scripted.errors import ScriptError, ScriptFailure
from bot.scripted.model_choice import ModelChoice, ScriptModels
from bot.scripted.runner import load_script, run_file, run_script

__all__ = [
    "ModelChoice",
    "ScriptError",
    "ScriptFailure",
    "ScriptModels",
    "load_script",
    "run_file",
    "run_script",
]
