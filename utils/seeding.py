"""Seeds and random states: what makes a run reproducible and a resumed run exact.

Two kinds of randomness, kept apart on purpose:

- **Data** (shuffle order, augmentation) is a pure function of the run's seed, the epoch and a
  sample's position in that epoch (:func:`item_seed`), never of an RNG's running state. So the
  same epoch gives the same batches with 0 or N loader workers, and a run resumed in the
  middle of an epoch picks up at the next batch without replaying the ones before.
- **Model-side** draws (dropout, a step's own sampling) use the process's global RNGs. Their
  states are saved in every checkpoint (:func:`rng_state`) and put back on resume
  (:func:`set_rng_state`).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global RNGs (CUDA included)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)


def item_seed(seed: int, epoch: int, position: int, stream: int = 0, pass_index: int = 0) -> int:
    """A 63-bit seed for the sample at ``position`` of pass ``pass_index`` over loader
    ``stream`` (0: labelled, 1: unlabelled, ...) in ``epoch`` of run ``seed``."""
    ss = np.random.SeedSequence(
        [seed % 2**63, stream % 2**63, epoch % 2**63, pass_index % 2**63, position % 2**63, 0x6A7A]
    )
    hi, lo = (int(v) for v in ss.generate_state(2, dtype=np.uint32))
    return ((hi << 32) | lo) >> 1


def epoch_permutation(
    n: int, seed: int, epoch: int, stream: int = 0, pass_index: int = 0
) -> list[int]:
    """The order of ``n`` samples in a pass of an epoch (a fixed function of its arguments)."""
    g = torch.Generator().manual_seed(item_seed(seed, epoch, -1, stream, pass_index))
    return torch.randperm(n, generator=g).tolist()


def rng_state() -> dict[str, Any]:
    """The global RNG states as plain types and tensors (loadable with ``weights_only``)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()  # noqa: NPY002 -- the legacy global RNG is what we save
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": {"version": int(version), "state": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Put back states saved by :func:`rng_state` (CUDA ones only where CUDA is in use)."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["gauss"]))  # noqa: NPY002
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
