"""What machine and software a number came from.

:func:`fingerprint` returns a JSON-able dict stored with every result, so that
a report can say which numbers are comparable (:func:`machine_key`), what
changed between two runs (:func:`diff`) and what caveats apply
(:func:`describe`, e.g. mixed precision on a CPU without native fp16/bf16).

Importing this module does not import TensorFlow; :func:`fingerprint` does,
unless it is given a TF-like ``tf_module``.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
from collections.abc import Callable, Mapping

from kbench import _validate

# Schema history:
#   1: initial fields: schema_version, software, cpu, threads, gpus, env,
#      determinism, machine_key.
FINGERPRINT_SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (1,)

# Environment variables that change how TensorFlow/Keras run (oneDNN, XLA, GPU
# threads, backend, visible devices, thread pools) or how they log.
ENV_VARS = (
    "TF_ENABLE_ONEDNN_OPTS",
    "TF_XLA_FLAGS",
    "TF_GPU_THREAD_MODE",
    "KERAS_BACKEND",
    "CUDA_VISIBLE_DEVICES",
    "TF_CPP_MIN_LOG_LEVEL",
    "OMP_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)

# x86 /proc/cpuinfo flags that decide float32 GEMM speed (avx, avx2, fma,
# avx512f) and whether fp16/bf16 run natively (the rest). amx_fp16 is not in
# the original list but is how Granite Rapids reports native fp16 matmul.
CPU_FLAGS_OF_INTEREST = (
    "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni",
    "amx_bf16", "amx_tile", "amx_int8", "amx_fp16",
)
# A CPU runs a precision natively when it has any of these flags; without them
# Keras mixed precision is emulated in float32 and usually slower than float32.
NATIVE_LOW_PRECISION_FLAGS = {
    "bf16": ("avx512_bf16", "amx_bf16"),
    "fp16": ("avx512_fp16", "amx_fp16"),
}

# nvidia-smi answers in well under a second; a hung driver must not hang a run.
NVIDIA_SMI_TIMEOUT_S = 10.0
NVIDIA_SMI_COMMAND = (
    "nvidia-smi",
    "--query-gpu=name,memory.total,driver_version",
    "--format=csv,noheader,nounits",
)

UNKNOWN = "unknown"

# Every fingerprint has these fields (dotted paths); validate() checks them.
REQUIRED_FIELDS = (
    "schema_version",
    "software.python", "software.python_implementation", "software.tensorflow",
    "software.tensorflow_git", "software.keras", "software.numpy", "software.kbench",
    "software.tf_build", "software.platform",
    "cpu.model", "cpu.logical_cores", "cpu.usable_cores", "cpu.flags",
    "cpu.native_low_precision.bf16", "cpu.native_low_precision.fp16",
    "threads.intra_op_configured", "threads.inter_op_configured",
    "threads.intra_op_effective", "threads.inter_op_effective",
    "gpus", "env", "determinism", "machine_key",
)


# --------------------------------------------------------------------------- collection


def fingerprint(
    *,
    cpuinfo_path: str | os.PathLike = "/proc/cpuinfo",
    environ: Mapping[str, str] | None = None,
    tf_module=None,
    determinism: bool | None = None,
    run: Callable = subprocess.run,
) -> dict:
    """The fingerprint of this process: software, CPU, threads, GPUs, env.

    Args:
        cpuinfo_path: a Linux ``/proc/cpuinfo``-format file (missing is fine).
        environ: the environment to record; default ``os.environ``.
        tf_module: a TensorFlow-like module; default ``import tensorflow``.
        determinism: whether TF op determinism is on; default asks TF.
        run: ``subprocess.run``-like, used for ``nvidia-smi`` when TF sees GPUs.
    """
    tf = _import_tensorflow() if tf_module is None else tf_module
    environ = os.environ if environ is None else environ
    cpu = cpu_info(cpuinfo_path)
    fp = {
        "schema_version": FINGERPRINT_SCHEMA_VERSION,
        "software": software_info(tf),
        "cpu": cpu,
        "threads": thread_info(tf, environ, cpu["usable_cores"]),
        "gpus": gpu_info(tf, run),
        "env": {var: environ.get(var) for var in ENV_VARS},
        "determinism": op_determinism_enabled(tf) if determinism is None else bool(determinism),
    }
    fp["machine_key"] = machine_key(fp)
    validate(fp)
    return fp


def _import_tensorflow():
    import tensorflow as tf

    return tf


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return UNKNOWN


def software_info(tf) -> dict:
    """Versions of Python, TF (and its build), Keras, NumPy and kbench."""
    build = dict(tf.sysconfig.get_build_info())
    return {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "tensorflow": tf.__version__,
        "tensorflow_git": getattr(tf, "__git_version__", UNKNOWN),
        "keras": _dist_version("keras"),
        "numpy": _dist_version("numpy"),
        "kbench": _dist_version("kbench"),
        "tf_build": {
            key: build.get(key) for key in ("is_cuda_build", "cuda_version", "cudnn_version")
        },
        "platform": platform.platform(),
    }


def _parse_cpuinfo(text: str) -> tuple[str | None, set[str]]:
    """Model name and flags of the first processor in /proc/cpuinfo text."""
    model, flags = None, set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:  # x86, ARM
            flags = set(value.split())
    return model, flags


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_info(cpuinfo_path: str | os.PathLike = "/proc/cpuinfo") -> dict:
    """CPU model, core counts, flags of interest and native fp16/bf16 support."""
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            model, all_flags = _parse_cpuinfo(f.read())
    except OSError:  # not Linux
        model, all_flags = None, set()
    flags = sorted(set(CPU_FLAGS_OF_INTEREST) & all_flags)
    return {
        "model": model or platform.processor() or UNKNOWN,
        "logical_cores": os.cpu_count(),
        "usable_cores": _usable_cores(),
        "flags": flags,
        "native_low_precision": {
            precision: any(flag in all_flags for flag in needs)
            for precision, needs in NATIVE_LOW_PRECISION_FLAGS.items()
        },
    }


def _env_threads(environ: Mapping[str, str], var: str) -> int:
    """TF reads TF_NUM_*_THREADS with safe_strto32; anything else counts as unset (0)."""
    try:
        return int(environ.get(var, "").strip())
    except ValueError:
        return 0


def thread_info(tf, environ: Mapping[str, str], usable_cores: int) -> dict:
    """Configured TF thread pools (0 = TF default) and the sizes TF derives from them.

    TF's rule (process_util.cc, local_device.cc; builds without OpenMP, as on
    PyPI): the configured value if > 0, else ``TF_NUM_{INTRA,INTER}OP_THREADS``
    if > 0, else the number of schedulable CPUs.
    """
    intra = tf.config.threading.get_intra_op_parallelism_threads()
    inter = tf.config.threading.get_inter_op_parallelism_threads()

    def effective(configured: int, var: str) -> int:
        if configured > 0:
            return configured
        from_env = _env_threads(environ, var)
        return from_env if from_env > 0 else usable_cores

    return {
        "intra_op_configured": intra,
        "inter_op_configured": inter,
        "intra_op_effective": effective(intra, "TF_NUM_INTRAOP_THREADS"),
        "inter_op_effective": effective(inter, "TF_NUM_INTEROP_THREADS"),
    }


def _nvidia_smi_rows(run: Callable) -> list[tuple[str, int | None, str]]:
    """(name, memory MiB, driver) per GPU from nvidia-smi; [] when it is absent or fails."""
    try:
        done = run(list(NVIDIA_SMI_COMMAND), capture_output=True, text=True,
                   timeout=NVIDIA_SMI_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    if done.returncode != 0:
        return []
    rows = []
    for line in done.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3:
            continue
        name, memory, driver = parts
        rows.append((name, int(memory) if memory.isdigit() else None, driver))
    return rows


def _compute_capability(details: Mapping) -> str | None:
    cc = details.get("compute_capability")
    return None if cc is None else ".".join(str(part) for part in cc)


def gpu_info(tf, run: Callable = subprocess.run) -> list[dict]:
    """Name, memory, compute capability and driver of each GPU TF can see.

    nvidia-smi rows are matched to TF's devices by name, not index: the two
    may order devices differently (CUDA_DEVICE_ORDER, CUDA_VISIBLE_DEVICES).
    """
    devices = tf.config.list_physical_devices("GPU")
    if not devices:
        return []
    smi_rows = _nvidia_smi_rows(run)
    driver = smi_rows[0][2] if smi_rows else None  # one driver per machine
    gpus = []
    for device in devices:
        details = tf.config.experimental.get_device_details(device)
        name = details.get("device_name") or device.name
        match = next((row for row in smi_rows if row[0] == name), None)
        if match is not None:
            smi_rows.remove(match)
        gpus.append({
            "name": name,
            "memory_mb": match[1] if match else None,
            "compute_capability": _compute_capability(details),
            "driver": driver,
        })
    return gpus


def op_determinism_enabled(tf) -> bool:
    """Whether TF op determinism is on (``tf`` is the tensorflow module, or a fake)."""
    public = getattr(tf.config.experimental, "is_op_determinism_enabled", None)
    if public is not None:
        return bool(public())
    # TF 2.21 has no public getter; this is what enable_op_determinism sets.
    from tensorflow.python.framework import config as tf_config

    return bool(tf_config.is_op_determinism_enabled())


# --------------------------------------------------------------------------- reading


# Words in CPU model names that say nothing about the part.
_CPU_NAME_NOISE = re.compile(r"\((?:r|tm|c)\)|@.*$|\b\d+-core\b|\bcpu\b|\bprocessor\b")


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or UNKNOWN


def machine_key(fp: Mapping) -> str:
    """A short slug of what makes numbers comparable: the GPUs, else CPU model + cores.

    e.g. ``gpu-nvidia-a100-sxm4-40gb-x1`` or ``cpu-intel-xeon-platinum-8375c-2c``.
    """
    gpus = fp.get("gpus") or []
    if gpus:
        counts: dict[str, int] = {}
        for gpu in gpus:
            counts[gpu["name"]] = counts.get(gpu["name"], 0) + 1
        return "gpu-" + "-".join(f"{_slug(name)}-x{n}" for name, n in sorted(counts.items()))
    cpu = fp["cpu"]
    model = _CPU_NAME_NOISE.sub(" ", str(cpu["model"]).lower())
    return f"cpu-{_slug(model)}-{cpu['usable_cores']}c"


def _describe_gpu(i: int, gpu: Mapping) -> str:
    memory = f"{gpu['memory_mb']} MiB" if gpu.get("memory_mb") else "memory unknown"
    cc = gpu.get("compute_capability") or "unknown"
    driver = gpu.get("driver") or "unknown"
    return f"GPU {i}: {gpu['name']} ({memory}, compute capability {cc}, driver {driver})"


def _describe_low_precision(cpu: Mapping) -> str:
    native = [p for p, ok in sorted(cpu["native_low_precision"].items()) if ok]
    missing = [p for p, ok in sorted(cpu["native_low_precision"].items()) if not ok]
    if not missing:
        return f"CPU low precision: native {'/'.join(native)}"
    line = f"CPU low precision: {'/'.join(missing)} without native support on this CPU"
    return line + (f" (native {'/'.join(native)})" if native else "")


def _describe_threads(threads: Mapping) -> str:
    def one(kind: str) -> str:
        configured = threads[f"{kind}_op_configured"]
        source = "TF default" if configured == 0 else "configured"
        return f"{kind}-op {threads[f'{kind}_op_effective']} ({source})"

    return f"Threads: {one('intra')}, {one('inter')}"


def describe(fp: Mapping) -> list[str]:
    """One-line human descriptions of a fingerprint, for report headers."""
    sw, cpu = fp["software"], fp["cpu"]
    build = sw["tf_build"]
    cuda = (f", CUDA {build.get('cuda_version')} / cuDNN {build.get('cudnn_version')} build"
            if build.get("is_cuda_build") else "")
    env = [f"{k}={v}" for k, v in fp["env"].items() if v is not None]
    lines = [
        f"Machine: {fp['machine_key']}",
        f"Software: Python {sw['python']} ({sw['python_implementation']}), "
        f"TensorFlow {sw['tensorflow']}{cuda}, Keras {sw['keras']}, NumPy {sw['numpy']}, "
        f"kbench {sw['kbench']}",
        f"Platform: {sw['platform']}",
        f"CPU: {cpu['model']}, {cpu['usable_cores']} usable of {cpu['logical_cores']} "
        f"logical cores, flags: {' '.join(cpu['flags']) or 'none of interest'}",
        _describe_low_precision(cpu),
        _describe_threads(fp["threads"]),
        *([_describe_gpu(i, g) for i, g in enumerate(fp["gpus"])] or ["GPUs: none"]),
        f"Op determinism: {'on' if fp['determinism'] else 'off'}",
        f"Env: {', '.join(env) if env else 'none of the tracked variables set'}",
    ]
    return lines


class _Missing:
    """Marks a field one fingerprint has and the other lacks, in :func:`diff`."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING = _Missing()


def _children(value) -> dict | None:
    """Fields of a container (dict, list of dicts, MISSING); None for a leaf value."""
    if value is MISSING:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, Mapping) for v in value):
        return {str(i): v for i, v in enumerate(value)}  # [] counts as an empty container
    return None


def _diff_into(a, b, path: str, out: dict[str, tuple]) -> None:
    ca, cb = _children(a), _children(b)
    if ca is None or cb is None:
        if a != b:
            out[path] = (a, b)
        return
    for key in sorted(set(ca) | set(cb), key=str):
        child = f"{path}.{key}" if path else str(key)
        _diff_into(ca.get(key, MISSING), cb.get(key, MISSING), child, out)


def diff(a: Mapping, b: Mapping) -> dict[str, tuple]:
    """``{dotted.path: (value in a, value in b)}`` for every field that differs.

    Dicts and lists of dicts (``gpus``) are walked; other values, including
    lists of strings such as ``cpu.flags``, are compared whole. A field present
    in only one fingerprint shows :data:`MISSING` on the other side.
    """
    out: dict[str, tuple] = {}
    _diff_into(a, b, "", out)
    return out


def _has_path(fp: Mapping, path: str) -> bool:
    node = fp
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return False
        node = node[key]
    return True


def validate(fp) -> None:
    """Raise ValueError naming the bad schema version or the missing fields."""
    if not isinstance(fp, Mapping):
        raise ValueError(f"fingerprint must be a dict, got {type(fp).__name__}: {fp!r}")
    version = fp.get("schema_version", MISSING)
    if version is MISSING:
        raise ValueError(f"fingerprint has no schema_version; keys are {sorted(fp)}")
    _validate.check_version("fingerprint schema_version", version, SUPPORTED_SCHEMA_VERSIONS)
    missing = [path for path in REQUIRED_FIELDS if not _has_path(fp, path)]
    if missing:
        raise ValueError(f"fingerprint is missing required field(s) {missing}")
    if not isinstance(fp["gpus"], list):
        raise ValueError(f"fingerprint gpus must be a list, got {fp['gpus']!r}")
