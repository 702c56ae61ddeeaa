"""GPU metrics through NVML (nvidia-ml-py). This machine has no NVIDIA GPU or driver:
what is tested for real is that NVML's absence costs nothing (no error, no gpu metrics);
the reading of values is checked against a stand-in for NVML's few calls."""

from __future__ import annotations

import sys
from types import SimpleNamespace

from metastore import sampler


def test_no_nvml_no_gpu_metrics_no_error(sqlite_store, monkeypatch):
    monkeypatch.delenv("METASTORE_SYSTEM_METRICS", raising=False)
    gpus = sampler.Gpus()  # the real nvidia-ml-py: no driver here
    assert gpus.handles == [] and gpus.read() == {}
    monkeypatch.setitem(sys.modules, "pynvml", None)  # the package not installed
    assert sampler.Gpus().read() == {}
    with sqlite_store.start_run("g", capture=False, system_metrics=0.05) as run:
        pass
    assert "system.rss_mb" in run.metrics
    assert not [k for k in run.metrics if k.startswith("system.gpu.")]


class NvmlStandIn:
    """NVML's calls the sampler makes, for two GPUs; the second fails its reads (a GPU
    lost or resetting), as pynvml raises NVMLError."""

    class NVMLError(Exception):
        pass

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetUtilizationRates(self, handle):
        if handle == 1:
            raise self.NVMLError("GPU is lost")
        return SimpleNamespace(gpu=87, memory=40)

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(used=3 * 1024 * 1024 * 1024, total=16 * 1024 * 1024 * 1024)


def test_reading_gpu_values():
    values = sampler.Gpus(NvmlStandIn()).read()
    assert values == {"system.gpu.0.utilization": 87.0, "system.gpu.0.memory": 3072.0}


def test_nvml_init_failure_is_no_gpus():
    class NoDriver(NvmlStandIn):
        def nvmlInit(self):
            raise self.NVMLError("Driver Not Loaded")

    assert sampler.Gpus(NoDriver()).read() == {}
