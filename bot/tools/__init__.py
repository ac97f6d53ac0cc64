"""Tools from MCP servers (issue 26): the servers of BOTLOOM_MCP_CONFIG (config.py), their
connections (servers.py), the approval rules and pending approvals in the bot's storage
(rules.py, approvals.py, cards.py, clicks.py), the audit log (audit.py), the runner the answer's
tool stage calls (runner.py) and `botloom tools` (commands.py)."""
