"""Shared fixtures for the Python reference tests: where the binaries and
models are, and a helper to run the CLI."""
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("RF_BIN_DIR", ROOT / "build"))
MODELS = ROOT / "models"
SMOLLM2 = MODELS / "SmolLM2-135M-Instruct-Q4_1.gguf"
GEMMA3 = MODELS / "gemma-3-270m-Q4_K_M.gguf"


def rocmforge(*args, check=True, timeout=600, **kw):
    """Runs the rocmforge binary; returns CompletedProcess (text mode)."""
    cp = subprocess.run([str(BIN_DIR / "rocmforge"), *map(str, args)], capture_output=True,
                        text=True, timeout=timeout, **kw)
    if check and cp.returncode != 0:
        raise AssertionError(f"rocmforge {' '.join(map(str, args))} exited {cp.returncode}:\n{cp.stderr}")
    return cp


@pytest.fixture(scope="session")
def real_models():
    """The real models fetched by scripts/fetch-models (make test fetches them)."""
    missing = [p for p in (SMOLLM2, GEMMA3) if not p.exists()]
    if missing:
        pytest.fail(f"models missing: {missing}; run scripts/fetch-models")
    return {"smollm2": SMOLLM2, "gemma3": GEMMA3}
