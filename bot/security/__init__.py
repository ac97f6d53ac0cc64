"""Who may talk to the bot and where its replies may go: the service-URL allowlist (replies
only to the channel connectors allowed; loopback in anonymous mode) and the Direct Line origin
guard. Used by the endpoint (http/), the local Direct Line (channels/) and the error handler."""
