"""Sandbox backends that run model-written code in stateful sessions (local, Docker, E2B)."""
