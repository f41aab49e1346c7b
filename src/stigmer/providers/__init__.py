"""LLM providers behind one interface (see ``registry.py``).

Nothing heavy is imported here: SDKs load only when a chat model is built.
"""
