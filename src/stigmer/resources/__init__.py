"""Resources: ``Agent`` and ``McpServer`` documents (``apiVersion: agentic.stigmer.ai/v1``) and their loader."""

from .loader import check_references, load_documents, parse_document
from .models import API_VERSION, BUILTIN_TOOLSETS, Agent, AgentSpec, McpServer, McpServerSpec, Resource
from .snapshot import agent_snapshot

__all__ = ["API_VERSION", "BUILTIN_TOOLSETS", "Agent", "AgentSpec", "McpServer", "McpServerSpec", "Resource",
           "agent_snapshot", "check_references", "load_documents", "parse_document"]
