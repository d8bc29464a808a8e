"""A2A: agent cards for the agents a company exposes, and A2A messages into its threads."""
