"""Tools an agent can call: the built-in workspace tool sets and MCP servers."""
