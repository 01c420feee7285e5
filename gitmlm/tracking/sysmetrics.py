"""System metrics sampled while a run lives: CPU, memory, and each GPU pynvml finds, as step
series under MLflow's names (`system/cpu_utilization_percentage`, …), one step per sample.

On in `git mlm run` (`--no-system-metrics` turns it off), off by default in the API
(`start_run(log_system_metrics=True)` turns it on). Needs psutil; GPUs need pynvml.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from gitmlm.errors import MlmError

INTERVAL_ENV = "GITMLM_SYSTEM_METRICS_INTERVAL"
DEFAULT_INTERVAL = 10.0
"""Seconds between samples (MLflow samples every 10 s too)."""
MB = 1 << 20


def interval() -> float:
    text = os.environ.get(INTERVAL_ENV)
    if not text:
        return DEFAULT_INTERVAL
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise MlmError(f"{INTERVAL_ENV}={text!r}: give the seconds between samples, e.g. 10")
    return value


def _gpus() -> list[Callable[[], dict[str, float]]]:
    try:
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
    except Exception:  # no library, no driver, no device: no GPU metrics
        return []
    readers: list[Callable[[], dict[str, float]]] = []
    for i in range(count):
        handle = pynvml.nvmlDeviceGetHandleByIndex(i)

        def read(handle: Any = handle, i: int = i) -> dict[str, float]:
            use = pynvml.nvmlDeviceGetUtilizationRates(handle)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            return {
                f"system/gpu_{i}_utilization_percentage": float(use.gpu),
                f"system/gpu_{i}_memory_usage_megabytes": mem.used / MB,
                f"system/gpu_{i}_memory_usage_percentage": 100.0 * mem.used / mem.total,
            }

        readers.append(read)
    return readers


class Sampler:
    """A daemon thread calling `log(metrics, step)` every `every` seconds until stopped."""

    def __init__(self, log: Callable[[dict[str, float], int], None], every: float) -> None:
        try:
            import psutil
        except ImportError as exc:
            raise MlmError("system metrics need psutil: pip install psutil") from exc
        self._psutil = psutil
        self._log = log
        self._every = every
        self._stop = threading.Event()
        self._gpus = _gpus()
        self._thread = threading.Thread(target=self._loop, name="gitmlm-sysmetrics", daemon=True)
        self.samples = 0

    def start(self) -> Sampler:
        self._psutil.cpu_percent(None)  # the first reading only starts the measurement
        self._thread.start()
        return self

    def sample(self) -> dict[str, float]:
        ps = self._psutil
        mem = ps.virtual_memory()
        out = {
            "system/cpu_utilization_percentage": float(ps.cpu_percent(None)),
            "system/system_memory_usage_megabytes": (mem.total - mem.available) / MB,
            "system/system_memory_usage_percentage": float(mem.percent),
        }
        for read in self._gpus:
            out.update(read())
        return out

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            self._log(self.sample(), self.samples)
            self.samples += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
