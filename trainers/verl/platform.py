"""verl on the CPU: a ``cpu`` platform, CPU FSDP engines and a gloo process group.

verl 0.9.1 runs on CUDA, ROCm and NPU; its device layer is a registry
(``verl.plugin.platform.PlatformRegistry``, chosen by ``VERL_PLATFORM``), the one NPU
support uses, but no CPU platform ships. :func:`install` registers one and fixes the
three places that assume an accelerator:

- **The platform** (:class:`PlatformCPU`): device ``cpu``, ``current_device()`` is
  ``torch.device("cpu")`` (an integer would mean ``cuda:N`` wherever verl passes it
  to ``.to()``), collectives over ``gloo``, and :data:`CPU_DEVICE`, a ``torch.cpu``
  that also answers the ``torch.cuda`` calls verl makes unconditionally
  (``empty_cache``, ``mem_get_info``, RNG state, ...). Its Ray resource is named
  ``GPU``: verl's ``ResourcePoolManager`` counts only GPU or NPU resources, so
  ``codedance train --device cpu`` starts Ray with *logical* GPUs
  (``ray_init.num_gpus``), one per trainer process; nothing touches a GPU.
- **The engines**: verl registers its FSDP engines for ``cuda`` and ``npu`` only;
  they are registered again for ``cpu`` with ``EngineRegistry`` (FSDP2 only: FSDP1
  refuses CPU parameters).
- **The process group**: verl builds the backend string
  ``"cpu:gloo,{device}:{backend}"``, which on the CPU names ``cpu`` twice;
  ``initialize_global_process_group_ray`` is wrapped to use plain ``gloo``.

Every process must run :func:`install` before verl resolves its platform, Ray
workers included, so importing this module installs it, and ``codedance train
--device cpu`` names it in ``VERL_USE_EXTERNAL_MODULES``: verl imports it at the end
of its own ``__init__`` in every process and fails loudly when it cannot. Installed
but not chosen (``VERL_PLATFORM`` unset), it changes nothing: the platform is never
auto-detected and the process group stays verl's on other devices.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import torch
from verl.plugin.platform.platform_base import PlatformBase
from verl.plugin.platform.platform_manager import PlatformRegistry

__all__ = ["CPU_DEVICE", "PLATFORM", "PlatformCPU", "install"]

#: The platform's name, the value of ``VERL_PLATFORM``.
PLATFORM = "cpu"
GLOO = "gloo"


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


def _memory_info(*args: Any, **kwargs: Any) -> tuple[int, int]:
    """(free, total) bytes of RAM, what ``torch.cuda.mem_get_info`` reports for a GPU."""
    page = os.sysconf("SC_PAGE_SIZE")
    return os.sysconf("SC_AVPHYS_PAGES") * page, os.sysconf("SC_PHYS_PAGES") * page


#: ``torch.cpu`` plus the ``torch.cuda`` calls verl makes on any device, as CPU no-ops.
_NO_OPS: dict[str, Any] = {
    "current_device": lambda: torch.device("cpu"),
    "empty_cache": _noop,
    "ipc_collect": _noop,
    "set_per_process_memory_fraction": _noop,
    "reset_peak_memory_stats": _noop,
    "manual_seed": torch.manual_seed,
    "manual_seed_all": torch.manual_seed,
    "get_rng_state": lambda *args, **kwargs: torch.get_rng_state(),
    "set_rng_state": lambda state, *args, **kwargs: torch.set_rng_state(state),
    "mem_get_info": _memory_info,
    "memory_allocated": lambda *args, **kwargs: 0,
    "memory_reserved": lambda *args, **kwargs: 0,
    "max_memory_allocated": lambda *args, **kwargs: 0,
    "max_memory_reserved": lambda *args, **kwargs: 0,
    "get_device_name": lambda *args, **kwargs: "cpu",
}
CPU_DEVICE = SimpleNamespace(
    **{
        **{name: getattr(torch.cpu, name) for name in dir(torch.cpu) if not name.startswith("_")},
        **_NO_OPS,
    }
)


class PlatformCPU(PlatformBase):
    """verl's device interface for plain CPUs (training and our HF rollout)."""

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> Any:
        return CPU_DEVICE

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        return False  # never auto-detected: chosen by VERL_PLATFORM=cpu only

    def current_device(self) -> Any:  # verl annotates int; a cpu device is what .to() needs
        return torch.device("cpu")

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: int | None = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return GLOO

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"  # set by Ray for the logical GPUs; read by nobody here

    @contextlib.contextmanager
    def nvtx_range(self, msg: str) -> Iterator[None]:
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"  # logical: see the module docs

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None


def _gloo_process_group(original: Any) -> Any:
    """``initialize_global_process_group_ray`` with plain gloo on the CPU platform."""

    @functools.wraps(original)
    def initialize(timeout_second: Any = None, backend: str | None = None) -> Any:
        from verl.utils.device import get_device_name

        if backend is None and get_device_name() == PLATFORM:
            backend = GLOO
        return original(timeout_second=timeout_second, backend=backend)

    initialize.codedance_gloo = True  # type: ignore[attr-defined]
    return initialize


def _register_engines() -> None:
    """verl's FSDP engines, registered for device ``cpu`` as they are for cuda and npu."""
    from verl.workers.engine.base import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import (
        FSDPEngineWithLMHead,
        FSDPEngineWithValueHead,
    )

    EngineRegistry.register("language_model", ["fsdp", "fsdp2"], device=PLATFORM)(
        FSDPEngineWithLMHead
    )
    EngineRegistry.register("value_model", ["fsdp", "fsdp2"], device=PLATFORM)(
        FSDPEngineWithValueHead
    )


def install() -> None:
    """Register the CPU platform and engines, and make verl's process group gloo; idempotent."""
    import sys

    import verl.utils.distributed as distributed

    PlatformRegistry.register(platform=PLATFORM)(PlatformCPU)
    if not getattr(distributed.initialize_global_process_group_ray, "codedance_gloo", False):
        patched = _gloo_process_group(distributed.initialize_global_process_group_ray)
        distributed.initialize_global_process_group_ray = patched
        # engine_workers imports the function by name; patch its copy if it is loaded already.
        workers = sys.modules.get("verl.workers.engine_workers")
        if workers is not None:
            workers.initialize_global_process_group_ray = patched  # type: ignore[attr-defined]
    _register_engines()


install()
