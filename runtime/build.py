"""Assembling a :class:`Runner` from the configuration and the registry.

Everything is looked up by name: ``model.backend``, ``protocol.name``,
``sandbox.backend`` and ``tools.enabled`` choose registered components, so a
third-party model, protocol, sandbox or tool is used exactly like a built-in one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from codedance.core.errors import ConfigError
from codedance.runtime.images import ImagePolicy
from codedance.runtime.loop import Limits, Runner

if TYPE_CHECKING:
    from codedance.core.config import Config, ModelConfig
    from codedance.core.registry import Registry
    from codedance.runtime.model import ModelBackend
    from codedance.runtime.protocol import Protocol
    from codedance.sandboxes.base import SandboxBackend

__all__ = ["build_runner", "model_config_for", "parse_model_spec"]


def parse_model_spec(spec: str) -> tuple[str, str]:
    """``"openai:http://host/v1"`` -> ``("openai", "http://host/v1")``; names the fix when bad."""
    backend, colon, target = spec.partition(":")
    if not colon or not backend or not target:
        raise ConfigError(
            f"--model {spec!r} is not NAME:TARGET. Examples: openai:http://127.0.0.1:8000/v1, "
            f"vllm:/models/CodeDance-7B, hf:/models/CodeDance-7B, replay:run/trajectories.jsonl"
        )
    return backend, target


def model_config_for(config: ModelConfig, spec: str | None) -> ModelConfig:
    """``config`` with ``--model NAME:TARGET`` applied (an http URL is the endpoint)."""
    if spec is None:
        return config
    backend, target = parse_model_spec(spec)
    update: dict[str, Any] = {"backend": backend}
    if target.startswith(("http://", "https://")):
        update["endpoint"] = target
    else:
        update["name"] = target
    return config.model_copy(update=update)


def build_runner(
    config: Config,
    registry: Registry,
    *,
    model: ModelBackend | None = None,
    sandbox: SandboxBackend | None = None,
) -> Runner:
    """A runner for ``config``; ``model``/``sandbox`` override the configured ones."""
    from codedance.core.tools import enabled_tools, render_tools_prompt, tool_docs
    from codedance.sandboxes.tools import bundle_tools

    protocol_class: type[Protocol] = registry.get("protocol", config.protocol.name)
    if model is None:
        model_class: type[ModelBackend] = registry.get("model", config.model.backend)
        model = model_class(config.model)
    if sandbox is None:
        sandbox_class: type[SandboxBackend] = registry.get("sandbox", config.sandbox.backend)
        sandbox = sandbox_class(config.sandbox)
    tools = enabled_tools(registry, config.tools.enabled)
    section = render_tools_prompt(
        tool_docs(registry, config.tools.enabled), config.tools.prompt_token_budget
    )
    runtime = config.runtime
    policy = ImagePolicy(min_pixels=runtime.image_min_pixels, max_pixels=runtime.image_max_pixels)
    limits = Limits(runtime.max_turns, runtime.max_tokens, runtime.max_images, policy)
    return Runner(
        model=model,
        protocol=protocol_class(config.protocol.options),
        sandbox=sandbox,
        tools=bundle_tools(tools) if tools else None,
        tools_section=section,
        limits=limits,
        on_error=config.sandbox.on_error,
        infra_retries=config.runtime.infra_retries,
    )
