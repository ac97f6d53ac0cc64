"""What the answer's tool stage needs of tools, without Bot Framework or MCP: the tool and call
types and the runner protocol bot/tools implements (api.py), choosing a tool and its arguments
(routing.py), and tool results as data in the prompt (results.py)."""
