"""Machine ceiling and description for the benchmark report.

``matmul_gflops`` measures what dense matmul reaches through TensorFlow on this machine (a
practical compute ceiling to set model throughput against); ``machine_description`` records
the hardware and library versions a benchmark result depends on. Does not import tfvae.
"""

from __future__ import annotations

import os
import platform
import sys
import time

__all__ = ["matmul_gflops", "matmul_timings", "machine_description"]


def matmul_timings(n: int = 2048, dtype="float32", repeats: int = 10, warmup: int = 2) -> list[float]:
    """Wall-clock seconds of each of ``repeats`` timed ``n x n @ n x n`` TensorFlow matmuls.

    The matmul runs inside a ``tf.function`` (traced and warmed up ``warmup`` times first).
    The function returns the sum of the product and each call fetches it to the host, so each
    timing includes the full matmul even on an asynchronous device (the extra n^2 reduction
    is negligible next to the 2 n^3 matmul).
    """
    import tensorflow as tf

    dt = tf.as_dtype(dtype)
    device = "/GPU:0" if tf.config.list_physical_devices("GPU") else "/CPU:0"
    with tf.device(device):
        a = tf.cast(tf.random.stateless_normal((n, n), seed=(1, 2)), dt)
        b = tf.cast(tf.random.stateless_normal((n, n), seed=(3, 4)), dt)

        @tf.function
        def mm(a, b):
            return tf.reduce_sum(tf.cast(tf.linalg.matmul(a, b), tf.float32))

        for _ in range(max(warmup, 1)):
            mm(a, b).numpy()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            mm(a, b).numpy()
            times.append(time.perf_counter() - t0)
    return times


def matmul_gflops(n: int = 2048, dtype="float32", repeats: int = 10) -> float:
    """Best (highest) GFLOP/s of ``repeats`` TensorFlow ``n x n`` matmuls, FLOPs = 2 n^3.

    The best of the runs is reported (not the median): on a shared machine it is the
    closest estimate of what the hardware can do. Uses the first GPU if TensorFlow sees one,
    otherwise the CPU with TensorFlow's default thread pools. ``dtype`` is anything
    ``tf.as_dtype`` accepts ("float32", "float16", "bfloat16", "float64", ...).
    """
    times = matmul_timings(n, dtype, repeats)
    return 2.0 * n**3 / min(times) / 1e9


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 2)
    except OSError:
        pass
    return None


def _cgroup_cpu_limit() -> float | None:
    """CPU quota of this cgroup (v2 ``cpu.max``) in cores, or None if unlimited/unknown."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        return None if quota == "max" else round(int(quota) / int(period), 2)
    except (OSError, ValueError):
        return None


def _dist_version(name: str) -> str | None:
    try:
        from importlib.metadata import PackageNotFoundError, version
        return version(name)
    except PackageNotFoundError:
        return None


def machine_description() -> dict:
    """Hardware and software facts relevant to benchmark numbers, as a JSON-able dict."""
    import numpy as np
    import tensorflow as tf

    try:
        import keras
        keras_version = keras.__version__
    except ImportError:
        keras_version = None

    if "torch" in sys.modules:
        torch_version = sys.modules["torch"].__version__
    else:
        # Avoid loading torch's native libraries into a TensorFlow process just for a string.
        torch_version = _dist_version("torch")

    gpus = []
    for dev in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(dev)
        except Exception:  # noqa: BLE001
            details = {}
        gpus.append({"name": dev.name, "device_name": details.get("device_name"),
                     "compute_capability": details.get("compute_capability")})

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None

    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "cgroup_cpu_limit": _cgroup_cpu_limit(),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "memory_gib": _mem_total_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras_version,
        "numpy": np.__version__,
        "torch": torch_version,
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "gpus": gpus,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(machine_description(), indent=2))
    for dt in ("float32",):
        times = matmul_timings(2048, dt, repeats=10)
        flops = 2.0 * 2048**3
        s = sorted(times)
        print(f"matmul n=2048 {dt}: best {flops / s[0] / 1e9:.1f} GFLOP/s, "
              f"median {flops / s[len(s) // 2] / 1e9:.1f} GFLOP/s over {len(s)} runs")
