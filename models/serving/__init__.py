"""Models over HTTP, in the OpenAI chat-completions dialect.

- `model_server`: `botloom model-server`, serving any ChatModel (`/v1/chat/completions`, SSE
  streaming, `/v1/models`, health).
- `openai_wire`: the wire format both sides share: request bodies, stream chunks, error codes.
- `remote`: `RemoteChatModel`, the ChatModel that calls such a server (ours, vLLM, TGI, Ollama).
"""
