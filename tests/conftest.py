"""Shared test fixtures: the real sample data folder and small deterministic settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real Jacquard and Cornell samples); skips when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _few_threads():
    # CI has 2 cores; tiny tensors run faster without thread fan-out.
    torch.set_num_threads(1)
    yield
