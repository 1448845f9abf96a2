"""Choosing CPU or GPU: per-call argument, then the configured default, then CPU."""

from __future__ import annotations

import functools
import logging

import numpy as np

from cluster.errors import KernelError, ResourceError

log = logging.getLogger(__name__)

__all__ = ["DEVICES", "gpu_available", "is_device_array", "resolve_device", "set_default_device"]

DEVICES = ("auto", "cpu", "gpu")
"""``auto`` = the GPU when numba.cuda sees one, else the CPU."""

_default_device = "cpu"


def set_default_device(device: str) -> str:
    """Set the device used when ``compute(device=None)``; returns the previous default.

    Job configs call this once at worker start-up; a per-call ``device=`` still wins.

    >>> previous = set_default_device("cpu")
    >>> set_default_device(previous)
    'cpu'
    """
    global _default_device
    previous = _default_device
    _default_device = _norm_device(device)
    return previous


@functools.lru_cache(maxsize=1)
def gpu_available() -> bool:
    """True when numba.cuda finds a usable CUDA device (or its simulator is enabled).

    Probed once per process. A machine without a CUDA driver is a CPU machine (logged at INFO);
    a driver that is there but fails (import error, driver or device initialisation error) is a
    broken install that would otherwise silently mean CPU, so it is logged at WARNING with the
    error text.
    """
    try:
        available, error = _probe_cuda()
    except Exception as e:  # noqa: BLE001 — a broken CUDA install means "no GPU", not a crash, and says so
        log.warning("CUDA is not usable: probing numba.cuda raised %s: %s; GPU kernels are off, "
                    "'auto' runs the CPU kernels", type(e).__name__, e)
        return False
    if available:
        return True
    message = " ".join((error or "numba.cuda.is_available() is False").split())
    if _NO_DRIVER in message:
        log.info("no CUDA driver on this machine (%s); 'auto' runs the CPU kernels", message)
    else:
        log.warning("CUDA is not usable: %s; GPU kernels are off, 'auto' runs the CPU kernels",
                    message)
    return False


_NO_DRIVER = "CUDA driver library cannot be found"
"""numba's message when no driver library exists at all: a CPU machine, not a broken install."""


def _probe_cuda() -> tuple[bool, str | None]:
    """(whether numba.cuda sees a device, numba's driver initialisation error if any)."""
    from numba import cuda

    if cuda.is_available():
        return True, None
    error = cuda.cuda_error()
    return False, None if error is None else str(error)


def is_device_array(value: object) -> bool:
    """True for arrays in GPU memory: CUDA array interface (CuPy, numba, PyTorch) or numba's
    device arrays (whose simulator version has no array interface, only ``copy_to_host``)."""
    if isinstance(value, np.ndarray):
        return False
    return hasattr(value, "__cuda_array_interface__") or hasattr(value, "copy_to_host")


def _norm_device(device: str) -> str:
    value = str(device).lower()
    if value == "cuda":
        value = "gpu"
    if value not in DEVICES:
        raise KernelError(f"device={device!r} is not understood; expected one of {list(DEVICES)!r}")
    return value


def resolve_device(device: str | None) -> str:
    """``"cpu"`` or ``"gpu"`` for a requested device (None: the default set by config).

    Raises:
        ResourceError: ``"gpu"`` was asked for and there is none.
    """
    value = _norm_device(_default_device if device is None else device)
    if value == "cpu":
        return "cpu"
    if value == "auto":
        return "gpu" if gpu_available() else "cpu"
    if not gpu_available():
        raise ResourceError(
            f"device={device!r} was asked for, but numba.cuda finds no CUDA GPU on this machine; "
            "pass device='cpu' (the same kernels, same results) or device='auto' to use a GPU "
            "only when one is present"
        )
    return "gpu"
