"""Tests for kbench.fingerprint: real machine, fake cpuinfo/environ/TF seams, diff, validate."""

import copy
import json
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest

from kbench import fingerprint as fpm
from kbench import testing

# A trimmed /proc/cpuinfo of a Sapphire Rapids part: two processors, so the
# parser must take the first block only (the second has a different model).
SAPPHIRE_RAPIDS_CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512_bf16 avx512_fp16 avx512_vnni amx_bf16 amx_tile amx_int8 sha_ni

processor\t: 1
model name\t: Some Other CPU
flags\t\t: fpu sse
"""

ICE_LAKE_CPUINFO = """\
processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
flags\t\t: fpu avx avx2 fma avx512f avx512_vnni
"""

FAKE_ENVIRON = {"KERAS_BACKEND": "tensorflow", "TF_XLA_FLAGS": "--tf_xla_auto_jit=2",
                "TF_NUM_INTEROP_THREADS": "3", "UNRELATED": "x"}


def fake_tf(gpu_names=(), intra=0, inter=0, version="9.9.9"):
    """The part of the tensorflow module that fingerprint() reads: a CUDA build with fake GPUs."""
    return testing.fake_tf(version, gpu_names=gpu_names, intra=intra, inter=inter,
                           cuda_build=True)


def fake_run(stdout="", returncode=0, error=None):
    """A subprocess.run stand-in that records its calls."""
    calls = []

    def run(cmd, **kwargs):
        calls.append((cmd, kwargs))
        if error is not None:
            raise error
        return SimpleNamespace(returncode=returncode, stdout=stdout, stderr="")

    run.calls = calls
    return run


def fake_fingerprint(tmp_path, cpuinfo=ICE_LAKE_CPUINFO, **kwargs):
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    kwargs.setdefault("tf_module", fake_tf())
    kwargs.setdefault("environ", {})
    kwargs.setdefault("determinism", False)
    return fpm.fingerprint(cpuinfo_path=path, **kwargs)


@pytest.fixture(scope="module")
def real_fp():
    return fpm.fingerprint()


# --------------------------------------------------------------------------- the real machine


def test_real_fingerprint_is_json_serialisable_and_complete(real_fp):
    assert json.loads(json.dumps(real_fp)) == real_fp
    fpm.validate(real_fp)
    assert set(real_fp) == {"schema_version", "software", "cpu", "threads", "gpus", "env",
                            "determinism", "machine_key"}
    assert real_fp["schema_version"] == fpm.FINGERPRINT_SCHEMA_VERSION
    assert set(real_fp["env"]) == set(fpm.ENV_VARS)


def test_real_fingerprint_reports_installed_versions(real_fp):
    import keras
    import numpy
    import tensorflow as tf

    sw = real_fp["software"]
    assert sw["tensorflow"] == tf.__version__
    assert sw["tensorflow_git"] == tf.__git_version__
    assert sw["keras"] == keras.__version__
    assert sw["numpy"] == numpy.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", sw["kbench"])
    assert sw["python"] == ".".join(map(str, sys.version_info[:3]))
    assert sw["tf_build"]["is_cuda_build"] == tf.sysconfig.get_build_info().get("is_cuda_build")


def test_real_fingerprint_on_this_cpu_only_machine(real_fp):
    cpu = real_fp["cpu"]
    assert real_fp["gpus"] == []
    assert cpu["logical_cores"] == os.cpu_count()
    assert cpu["usable_cores"] == len(os.sched_getaffinity(0))
    assert real_fp["machine_key"].startswith("cpu-")
    assert real_fp["machine_key"].endswith(f"-{cpu['usable_cores']}c")
    assert re.fullmatch(r"[a-z0-9-]+", real_fp["machine_key"])
    assert real_fp["determinism"] is False
    assert real_fp["env"]["TF_CPP_MIN_LOG_LEVEL"] == os.environ.get("TF_CPP_MIN_LOG_LEVEL")


def test_real_describe_mentions_the_key_facts(real_fp):
    text = "\n".join(fpm.describe(real_fp))
    assert real_fp["machine_key"] in text
    assert real_fp["software"]["tensorflow"] in text
    assert "GPUs: none" in text


def test_importing_fingerprint_does_not_import_tensorflow():
    code = "import sys, kbench.fingerprint; assert 'tensorflow' not in sys.modules, 'tf imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --------------------------------------------------------------------------- CPU and env seams


def test_fake_cpuinfo_model_and_flags_are_parsed(tmp_path):
    fp = fake_fingerprint(tmp_path, SAPPHIRE_RAPIDS_CPUINFO)
    cpu = fp["cpu"]
    assert cpu["model"] == "Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz"
    assert cpu["flags"] == sorted(["avx", "avx2", "fma", "avx512f", "avx512_bf16",
                                   "avx512_fp16", "avx512_vnni", "amx_bf16", "amx_tile",
                                   "amx_int8"])
    assert cpu["native_low_precision"] == {"bf16": True, "fp16": True}
    assert fp["machine_key"] == f"cpu-intel-xeon-platinum-8480-{cpu['usable_cores']}c"


def test_cpu_without_bf16_or_fp16_is_described_as_such(tmp_path):
    fp = fake_fingerprint(tmp_path, ICE_LAKE_CPUINFO)
    assert fp["cpu"]["flags"] == ["avx", "avx2", "avx512_vnni", "avx512f", "fma"]
    assert fp["cpu"]["native_low_precision"] == {"bf16": False, "fp16": False}
    assert "bf16/fp16 without native support on this CPU" in fpm.describe(fp)[4]
    assert fp["machine_key"] == f"cpu-intel-xeon-platinum-8375c-{fp['cpu']['usable_cores']}c"


@pytest.mark.parametrize("flags, expected", [
    ("avx512_bf16", {"bf16": True, "fp16": False}),
    ("amx_bf16 amx_tile", {"bf16": True, "fp16": False}),
    ("avx512_fp16", {"bf16": False, "fp16": True}),
    ("amx_fp16", {"bf16": False, "fp16": True}),
    ("avx2 fma", {"bf16": False, "fp16": False}),
])
def test_native_low_precision_follows_flags(tmp_path, flags, expected):
    fp = fake_fingerprint(tmp_path, f"model name\t: X\nflags\t\t: {flags}\n")
    assert fp["cpu"]["native_low_precision"] == expected


def test_missing_cpuinfo_falls_back_to_platform(tmp_path):
    cpu = fpm.cpu_info(tmp_path / "absent")
    assert cpu["flags"] == []
    assert cpu["model"]  # platform.processor() or "unknown", never empty


def test_fake_environ_is_recorded_and_drives_effective_threads(tmp_path):
    fp = fake_fingerprint(tmp_path, environ=FAKE_ENVIRON, tf_module=fake_tf(intra=0, inter=0))
    assert fp["env"] == {var: FAKE_ENVIRON.get(var) for var in fpm.ENV_VARS}
    assert "UNRELATED" not in fp["env"]
    assert fp["threads"] == {"intra_op_configured": 0, "inter_op_configured": 0,
                             "intra_op_effective": fp["cpu"]["usable_cores"],
                             "inter_op_effective": 3}


def test_configured_threads_win_over_env(tmp_path):
    fp = fake_fingerprint(tmp_path, environ=FAKE_ENVIRON, tf_module=fake_tf(intra=7, inter=5))
    assert fp["threads"]["intra_op_effective"] == 7
    assert fp["threads"]["inter_op_effective"] == 5
    assert "intra-op 7 (configured)" in fpm.describe(fp)[5]


def test_determinism_override_is_recorded(tmp_path):
    assert fake_fingerprint(tmp_path, determinism=True)["determinism"] is True


# --------------------------------------------------------------------------- GPU seam

A100 = "NVIDIA A100-SXM4-40GB"


def test_fake_gpus_are_listed_and_key_the_machine(tmp_path):
    run = fake_run(stdout=f"{A100}, 40960, 535.104.05\n{A100}, 40960, 535.104.05\n")
    fp = fake_fingerprint(tmp_path, tf_module=fake_tf(gpu_names=(A100, A100)), run=run)
    expected = {"name": A100, "memory_mb": 40960, "compute_capability": "8.0",
                "driver": "535.104.05"}
    assert fp["gpus"] == [expected, expected]
    assert fp["machine_key"] == "gpu-nvidia-a100-sxm4-40gb-x2"
    assert run.calls[0][0] == list(fpm.NVIDIA_SMI_COMMAND)
    assert run.calls[0][1]["timeout"] == fpm.NVIDIA_SMI_TIMEOUT_S
    assert fpm.describe(fp)[6].startswith(f"GPU 0: {A100} (40960 MiB, compute capability 8.0")


def test_gpus_match_nvidia_smi_rows_by_name_not_order(tmp_path):
    run = fake_run(stdout="Tesla T4, 15360, 550.1\nNVIDIA L4, 23034, 550.1\n")
    fp = fake_fingerprint(tmp_path, tf_module=fake_tf(gpu_names=("NVIDIA L4", "Tesla T4")),
                          run=run)
    assert [(g["name"], g["memory_mb"]) for g in fp["gpus"]] == [("NVIDIA L4", 23034),
                                                                 ("Tesla T4", 15360)]
    assert fp["machine_key"] == "gpu-nvidia-l4-x1-tesla-t4-x1"


@pytest.mark.parametrize("run", [
    fake_run(error=FileNotFoundError("nvidia-smi")),
    fake_run(error=subprocess.TimeoutExpired("nvidia-smi", fpm.NVIDIA_SMI_TIMEOUT_S)),
    fake_run(returncode=9, stdout="NVIDIA-SMI has failed"),
], ids=["absent", "timeout", "failed"])
def test_gpus_without_nvidia_smi_still_listed(tmp_path, run):
    fp = fake_fingerprint(tmp_path, tf_module=fake_tf(gpu_names=(A100,)), run=run)
    assert fp["gpus"] == [{"name": A100, "memory_mb": None, "compute_capability": "8.0",
                           "driver": None}]
    assert fp["machine_key"] == "gpu-nvidia-a100-sxm4-40gb-x1"


def test_nvidia_smi_is_not_run_without_gpus(tmp_path):
    run = fake_run()
    assert fake_fingerprint(tmp_path, run=run)["gpus"] == []
    assert run.calls == []


# --------------------------------------------------------------------------- diff


def test_diff_of_a_fingerprint_with_itself_is_empty(real_fp):
    assert fpm.diff(real_fp, copy.deepcopy(real_fp)) == {}


def test_diff_reports_changed_dotted_paths_only(tmp_path):
    a = fake_fingerprint(tmp_path, ICE_LAKE_CPUINFO)
    b = copy.deepcopy(a)
    b["software"]["tensorflow"] = "2.22.0"
    b["env"]["KERAS_BACKEND"] = "jax"
    b["cpu"]["flags"] = a["cpu"]["flags"][:-1]
    assert fpm.diff(a, b) == {
        "cpu.flags": (a["cpu"]["flags"], b["cpu"]["flags"]),
        "env.KERAS_BACKEND": (None, "jax"),
        "software.tensorflow": ("9.9.9", "2.22.0"),
    }


def test_diff_walks_gpu_lists_and_marks_missing_fields(tmp_path):
    cpu_only = fake_fingerprint(tmp_path)
    with_gpu = fake_fingerprint(tmp_path, tf_module=fake_tf(gpu_names=(A100,)),
                                run=fake_run(error=FileNotFoundError()))
    changed = fpm.diff(cpu_only, with_gpu)
    assert changed["gpus.0.name"] == (fpm.MISSING, A100)
    assert changed["machine_key"][1] == "gpu-nvidia-a100-sxm4-40gb-x1"
    assert set(changed) == {"gpus.0.name", "gpus.0.memory_mb", "gpus.0.compute_capability",
                            "gpus.0.driver", "machine_key"}
    assert repr(fpm.MISSING) == "<missing>"


# --------------------------------------------------------------------------- validate


def test_validate_names_missing_fields(tmp_path):
    fp = fake_fingerprint(tmp_path)
    del fp["env"]
    del fp["cpu"]["model"]
    with pytest.raises(ValueError, match=r"missing required field\(s\) \['cpu.model', 'env'\]"):
        fpm.validate(fp)


@pytest.mark.parametrize("version", [2, 0, "1", True, None])
def test_validate_rejects_other_schema_versions(tmp_path, version):
    fp = {**fake_fingerprint(tmp_path), "schema_version": version}
    with pytest.raises(ValueError, match=f"got {re.escape(repr(version))}$"):
        fpm.validate(fp)


def test_validate_rejects_missing_version_and_non_dicts(tmp_path):
    fp = fake_fingerprint(tmp_path)
    del fp["schema_version"]
    with pytest.raises(ValueError, match="no schema_version"):
        fpm.validate(fp)
    with pytest.raises(ValueError, match="got list"):
        fpm.validate([1])
    with pytest.raises(ValueError, match="gpus must be a list, got 'none'"):
        fpm.validate({**fake_fingerprint(tmp_path), "gpus": "none"})
