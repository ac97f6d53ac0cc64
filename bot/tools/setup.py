"""The tools' parts built from the settings (bot/app.py wires them): the servers of
BOTLOOM_MCP_CONFIG, the runner with its approvals and audit, the router the answer's tool stage
uses (the model's own tool calls where it can make them, else the router by meaning), and the
handler of approval clicks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botbuilder.core import ConversationState, Storage

from bot.settings import Settings, SettingsError, env_name
from dialogs.answer.tool_stage import ToolStage
from dialogs.tools.commands import ToolCommands
from dialogs.tools.native import NativeToolRouter
from dialogs.tools.routing import ToolChooser, ToolRouter
from models import ChatMessage
from models.embedded import EMBEDDED_DEFAULT
from models.embeddings import EmbeddingModel, HFEmbeddingModel
from models.tool_calling import ToolCallingModel

if TYPE_CHECKING:  # the MCP SDK is imported only where BOTLOOM_MCP_CONFIG is set (26 MB, 0.6 s)
    from bot.tools.clicks import ApprovalClicks
    from bot.tools.runner import McpToolRunner
    from bot.tools.servers import McpServers


class LazyArguments:
    """Constrained JSON from the model in `folder`, loaded on first use (in a worker thread)."""

    def __init__(self, folder: Path | None, cache_dir: Path) -> None:
        self._folder = folder
        self._cache_dir = cache_dir
        self._lock = threading.Lock()
        self._model: Any = None

    def load(self) -> Any:
        with self._lock:
            if self._model is None:
                from models.constrained import ConstrainedJson  # torch, llguidance: when used
                from models.embedded import ensure_embedded_default

                folder = self._folder or ensure_embedded_default(self._cache_dir)
                self._model = ConstrainedJson(folder)
            return self._model

    def generate(self, messages: Sequence[ChatMessage], schema: dict[str, Any]) -> dict[str, Any]:
        return self.load().generate(messages, schema)


@dataclass
class Tools:
    servers: McpServers
    runner: McpToolRunner
    stage: ToolStage
    commands: ToolCommands
    clicks: ApprovalClicks
    warm: Callable[[], object] | None = None  # loads the router's models, off the event loop
    warming: asyncio.Future[object] | None = field(default=None, init=False)

    def start(self) -> None:
        """Connect to the servers and load the router's models in the background (a first
        turn would otherwise wait for them)."""
        self.servers.start()
        if self.warm is not None:
            self.warming = asyncio.get_running_loop().run_in_executor(None, self.warm)

    async def close(self) -> None:
        await self.servers.close()


def build_tools(
    settings: Settings,
    storage: Storage,
    conversation_state: ConversationState,
    *,
    model: object = None,
    embedding_model: EmbeddingModel | None = None,
    arguments: Any = None,
) -> Tools | None:
    """The tools of BOTLOOM_MCP_CONFIG, or None without one. Raises McpConfigError, and
    SettingsError when BOTLOOM_TOOLS_AUDIT cannot be opened for append.

    With BOTLOOM_TOOL_CALLING=auto and a `model` that has tool calls (models/tool_calling.py),
    the model chooses tools itself on every turn where it can (dialogs/tools/native.py); the
    router by meaning takes the other turns, and all of them with `meaning`."""
    if not settings.mcp_config:
        return None
    from bot.tools.approvals import PendingApprovals
    from bot.tools.audit import AuditLog
    from bot.tools.clicks import ApprovalClicks
    from bot.tools.config import load_config
    from bot.tools.runner import McpToolRunner
    from bot.tools.servers import McpServers

    servers = McpServers(load_config(settings.mcp_config))
    audit = AuditLog(settings.tools_audit or None)
    try:  # refused at start; a write failing later is logged (the call is settled all the same)
        audit.check_writable()
    except OSError as error:
        raise SettingsError(
            f"{env_name('tools_audit')}={settings.tools_audit}: the tool audit log cannot be "
            f"written ({error.strerror or error}); set it to a writable file"
        ) from error
    runner = McpToolRunner(
        servers,
        PendingApprovals(storage, expiry_s=settings.tool_approval_expiry_s),
        audit,
    )
    local = Path(settings.model)
    folder = local if settings.model != "embedded" and local.is_dir() else None
    embedder = embedding_model or HFEmbeddingModel()
    argument_model = arguments or LazyArguments(folder, settings.cache_dir)
    meaning = ToolRouter(embedder, argument_model, threshold=settings.tool_threshold)
    router: ToolChooser = meaning
    if settings.tool_calling == "auto" and isinstance(model, ToolCallingModel):
        router = NativeToolRouter(model, meaning)
    # The embedded default in process routes by meaning (its template takes no tools): its
    # argument model is loaded ahead; another model may never need it.
    by_meaning = router is meaning or (
        settings.model == EMBEDDED_DEFAULT and not settings.model_url
    )
    stage = ToolStage(
        runner,
        router,
        conversation_state.create_property("ToolCallWaiting"),
        turn_timeout_s=settings.tool_turn_timeout_s,
    )

    def warm() -> None:
        embedder.embed(["warm"])
        if by_meaning and isinstance(argument_model, LazyArguments):
            argument_model.load()

    return Tools(servers, runner, stage, ToolCommands(runner), ApprovalClicks(runner), warm)
