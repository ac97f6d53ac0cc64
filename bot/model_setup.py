"""The model the settings ask for: a remote server, the engine in this process, or the fake.

Shared by `botloom serve`, `botloom chat`, `botloom test` and `botloom model-server`.
"""

from __future__ import annotations

from functools import partial

from bot.settings import Settings
from models import ChatModel, GenerationParams
from models.deferred import DeferredChatModel
from models.fake import FAKE_SPEC, fake_from_spec
from models.guard import GuardLimits


def build_model(settings: Settings) -> ChatModel:
    """The configured model: a remote server when BOTLOOM_MODEL_URL is set, else a local one."""
    if settings.model_url:
        return build_remote_model(settings)
    return build_local_model(settings)


def build_remote_model(settings: Settings) -> ChatModel:
    """The OpenAI-compatible server at BOTLOOM_MODEL_URL (`botloom model-server`, vLLM, TGI,
    Ollama)."""
    from models.serving.remote import RemoteChatModel, RemoteOptions

    return RemoteChatModel(
        RemoteOptions(
            url=settings.model_url,
            api_key=settings.model_api_key,
            model="" if settings.model == "embedded" else settings.model,  # "": what it serves
            context_window=settings.context_tokens,
            connect_timeout_s=settings.model_connect_timeout_s,
            read_timeout_s=settings.model_read_timeout_s,
            max_retries=settings.model_max_retries,
            tokenizer=settings.model_tokenizer,
        )
    )


def build_local_model(settings: Settings) -> ChatModel:
    """The model in this process, loaded in the background (see models.engine.load_engine_model:
    BOTLOOM_ENGINE picks the batching engine or serial generation).

    `BOTLOOM_MODEL=fake` (or `fake?delay=0.1`) is the deterministic echo model, for demos and tests.
    """
    if settings.model.split("?")[0] == FAKE_SPEC:
        return fake_from_spec(settings.model)
    # torch is imported only when a real model is used
    from models.engine import EngineConfig, load_engine_model

    engine = EngineConfig(
        max_batch=settings.max_batch,
        max_waiting=settings.max_waiting,
        retry_after_s=settings.busy_retry_after_s,
        prefix_cache_tokens=settings.prefix_cache_tokens,
        block_size=settings.kv_block_size,
        weights=settings.engine_weights,  # type: ignore[arg-type]  # checked by bot.settings
        prefix_cache_bytes=settings.prefix_cache_mb << 20 or None,
        torch_threads=settings.torch_threads,
        int4_group_size=settings.engine_int4_group,
    )
    loader = partial(
        load_engine_model,
        settings.model,
        cache_dir=settings.cache_dir,
        engine=settings.engine,
        config=engine,
        device=settings.model_device,
        dtype=settings.model_dtype,
        context_window=settings.context_tokens,  # every request capped, the model server's too
        default_params=GenerationParams(temperature=settings.temperature, top_p=settings.top_p),
    )
    return DeferredChatModel(loader, name=settings.model)


def guard_limits(settings: Settings) -> GuardLimits:
    """How many generations may wait, and for how long one may run."""
    return GuardLimits(
        max_pending=settings.max_pending_requests,
        deadline_s=settings.generation_timeout_s,
        retry_after_s=settings.busy_retry_after_s,
    )


def reply_params(settings: Settings) -> GenerationParams:
    """The generation parameters of a reply."""
    return GenerationParams(
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        repetition_penalty=settings.repetition_penalty,
        stop=settings.stop,
    )
