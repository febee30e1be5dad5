"""The CPU fallback of the GPU backend, on a machine without a usable GPU
(the CI machine): with the plugin absent, present but failing (the real
CUDA/HIP plugins without their driver or a device, and stand-ins that fail
the way an unsupported arch, a stale build or a foreign library does),
`--device auto` runs on the CPU, logs exactly ONE line saying why, and the
text is the CPU's; `--device gpu` is an error naming the reason; `info --gpu`
lists every plugin with its reason. Release build only (label slow): the
real plugins are not built in the sanitizer build.

On a machine where a GPU opens, the tests that need its absence say so and
skip (scripts/gpu-check covers that machine)."""
import ctypes
import os
import re
from pathlib import Path

import pytest

from conftest import BIN_DIR, SMOLLM2, rocmforge

PLUGINS = ["librocmforge-cuda.so", "librocmforge-hip.so"]
GEN = ["generate", "-m", SMOLLM2, "-p", "The capital of France is", "-n", "8", "--temp", "0", "--threads", "2"]


def has_lib(name):
    try:
        ctypes.CDLL(name)
        return True
    except OSError:
        return False


def gpu_lines(stderr):
    return [l for l in stderr.splitlines() if l.startswith("rocmforge: ") and " gpu: " in l]


def run_env(plugin_dir, *args, check=True, **kw):
    env = dict(os.environ)
    env["ROCMFORGE_GPU_PLUGIN_DIR"] = str(plugin_dir)
    return rocmforge(*args, check=check, env=env, **kw)


@pytest.fixture(scope="module")
def cpu_text():
    cp = rocmforge(*GEN, "--device", "cpu")
    assert not gpu_lines(cp.stderr), cp.stderr  # cpu: no plugin is even looked for
    assert "backend cpu," in cp.stderr
    return cp.stdout


@pytest.fixture(scope="module")
def gpu_opens():
    """Whether a real plugin opens a device here (then the no-GPU tests skip)."""
    cp = rocmforge("info", "--gpu")
    return "backend (--device auto): cpu" not in cp.stdout


def test_plugin_absent(tmp_path, cpu_text):
    cp = run_env(tmp_path, *GEN)
    lines = gpu_lines(cp.stderr)
    assert len(lines) == 1, cp.stderr
    assert lines[0].startswith("rocmforge: warn: gpu: using the CPU backend: no GPU plugin")
    assert "librocmforge-cuda.so" in lines[0] and "librocmforge-hip.so" in lines[0] and str(tmp_path) in lines[0]
    assert "backend cpu (no usable GPU)" in cp.stderr
    assert cp.stdout == cpu_text


# The ABI version the binary was built with, from the header both sides
# include; the stand-in plugin of mode "abi" claims it plus 41.
ABI = int(re.search(r"#define RF_GPU_ABI_VERSION (\d+)u",
                    (Path(__file__).resolve().parents[2] / "src/gpu/gpu.h").read_text()).group(1))


@pytest.mark.parametrize("mode,expect", [
    ("fail", r'librocmforge-cuda\.so: cuda device 0 "Fake GPU 9000" \(sm_10\): no usable kernel image '
             r'\(plugin built for sm_80 sm_90\)'),
    ("abi", rf"librocmforge-cuda\.so: plugin ABI {ABI + 41} .* this binary needs {ABI} .*different builds"),
    ("nosym", r"librocmforge-cuda\.so: no symbol rf_gpu_plugin_v1 \(not a ROCmForge GPU plugin\)"),
])
def test_plugin_present_but_failing(mode, expect, cpu_text):
    d = BIN_DIR / "fake-gpu" / mode
    assert (d / "librocmforge-cuda.so").exists(), f"stand-in plugin not built: {d}"
    cp = run_env(d, *GEN)
    lines = gpu_lines(cp.stderr)
    assert len(lines) == 1, cp.stderr
    assert lines[0].startswith("rocmforge: warn: gpu: using the CPU backend: ")
    assert re.search(expect, lines[0]), lines[0]
    assert cp.stdout == cpu_text
    # --device gpu: an error naming the same reason, exit 2
    cp = run_env(d, *GEN, "--device", "gpu", check=False)
    assert cp.returncode == 2, cp.stderr
    assert "--device gpu: no usable GPU" in cp.stderr and re.search(expect, cp.stderr), cp.stderr


def test_real_plugins_fail_cleanly(cpu_text, gpu_opens):
    """The plugins this build made (nvcc / hipcc were found) load on a machine
    without a GPU driver or device and fail with the reason in one line."""
    built = [p for p in PLUGINS if (BIN_DIR / p).exists()]
    assert built, f"no GPU plugin in {BIN_DIR}: the Release build makes them when nvcc or hipcc is found"
    if gpu_opens:
        pytest.skip("a GPU opens on this machine: the fallback with real plugins is not reachable here")
    cp = rocmforge(*GEN)
    lines = gpu_lines(cp.stderr)
    assert len(lines) == 1, cp.stderr
    line = lines[0]
    assert line.startswith("rocmforge: warn: gpu: using the CPU backend: "), line
    for p in built:
        assert str(BIN_DIR / p) in line, line
    if "librocmforge-cuda.so" in built:
        if not has_lib("libcuda.so.1"):  # no driver: the plugin names the library it needs
            assert "libcuda.so.1: cannot open shared object file" in line, line
        else:
            assert re.search(r"librocmforge-cuda\.so: (cuda runtime: |cuda device)", line), line
    if "librocmforge-hip.so" in built:
        assert re.search(r"librocmforge-hip\.so: (hip runtime: |.*libamdhip64|hip device)", line), line
    assert cp.stdout == cpu_text
    # bench and info say the same
    cp = rocmforge("bench", "-m", SMOLLM2, "-p", "8", "-n", "2", "-r", "1", "-t", "2")
    assert len(gpu_lines(cp.stderr)) == 1 and "| CPU " in cp.stdout, cp.stdout + cp.stderr
    cp = rocmforge("info", "--gpu")
    for p in built:
        assert p in cp.stdout
    assert "backend (--device auto): cpu: " in cp.stdout


def test_device_option_values(tmp_path):
    cp = rocmforge(*GEN, "--device", "tpu", check=False)
    assert cp.returncode == 1 and "--device: 'tpu' is not cpu, gpu or auto" in cp.stderr
    cp = rocmforge(*GEN, "--gpu-layers", "many", check=False)
    assert cp.returncode == 1 and "--gpu-layers: 'many'" in cp.stderr
    cp = run_env(tmp_path, *GEN, "--device", "gpu", check=False)
    assert cp.returncode == 2 and "--device gpu: no usable GPU: no GPU plugin" in cp.stderr, cp.stderr
    # --gpu-layers 0 never loads a plugin
    cp = run_env(tmp_path, *GEN, "--gpu-layers", "0")
    assert not gpu_lines(cp.stderr), cp.stderr


def test_chat_device_options(tmp_path):
    """chat takes the same --device / --gpu-layers as generate: with the plugin
    absent, auto answers on the CPU after one log line, gpu is an error."""
    chat = ["chat", "-m", SMOLLM2, "--temp", "0", "-n", "8", "--threads", "2"]
    question = "Name a colour.\n"
    cpu = rocmforge(*chat, "--device", "cpu", input=question)
    assert not gpu_lines(cpu.stderr), cpu.stderr
    auto = run_env(tmp_path, *chat, input=question)
    assert len(gpu_lines(auto.stderr)) == 1, auto.stderr
    assert auto.stdout == cpu.stdout and cpu.stdout.strip(), (auto.stdout, cpu.stdout)
    cp = run_env(tmp_path, *chat, "--device", "gpu", input=question, check=False)
    assert cp.returncode == 2 and "--device gpu: no usable GPU: no GPU plugin" in cp.stderr, cp.stderr
    cp = rocmforge(*chat, "--gpu-layers", "lots", input=question, check=False)
    assert cp.returncode == 1 and "--gpu-layers: 'lots'" in cp.stderr, cp.stderr


def test_upload_sees_the_files_layout(cpu_text):
    """A plugin must be handed weights in the file's row layout: the CPU's
    repack (X16 interleave, in place) may only run once the GPU has taken its
    layers. `serve` attaches its context after the engine opened, and once
    repacked first, so that the GPU read scrambled rows (empty answers).
    The stand-in of mode "upload" takes every layer, checks each weight's
    layout at upload, and fails saying what it found."""
    from test_server import Server, post

    d = BIN_DIR / "fake-gpu" / "upload"
    assert (d / "librocmforge-cuda.so").exists(), f"stand-in plugin not built: {d}"
    ok = "fake upload: 210 weights of layers 0-29 and the output, all in the file's rows"
    cp = run_env(d, *GEN)
    assert [l for l in gpu_lines(cp.stderr)] == [f"rocmforge: warn: gpu: using the CPU backend: {ok}"], cp.stderr
    assert cp.stdout == cpu_text  # and the CPU, which repacked after, answers as before
    srv = Server("--parallel", "2", env={"ROCMFORGE_GPU_PLUGIN_DIR": str(d)})
    try:
        st, _, r = post(srv, "/v1/chat/completions", {"messages": [{"role": "user", "content": "Name a colour."}],
                                                      "max_tokens": 8, "temperature": 0})
        assert st == 200 and r["choices"][0]["message"]["content"].strip(), r
    finally:
        srv.stop()
    log = srv.text()
    assert f"gpu: using the CPU backend: {ok}" in log, log
    assert "backend cpu (GPU upload failed)" in log, log
