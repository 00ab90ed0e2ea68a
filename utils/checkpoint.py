"""Checkpoints: atomic writes, ``weights_only`` loads, and rebuilding a model from one.

A checkpoint is a dict of plain types and state_dicts::

    {"model": state_dict, "network": {"name": str, "kwargs": dict}, "optimizer": ...,
     "scheduler": ..., "scaler": ..., "epoch": int, "args": dict, "metrics": dict}

so ``torch.load(path, weights_only=True)`` reads it and :func:`load_model` rebuilds the network
from its stored name and keyword arguments, with no need for the command line that trained it.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models import GraspNet, get_network
from utils.atomic import atomic_open


def unwrap(model: nn.Module) -> nn.Module:
    """The bare network inside DistributedDataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through :func:`utils.atomic.atomic_open`: a crash, a kill or a full
    disk mid-write leaves the previous file intact, never a truncated checkpoint."""
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


def make_checkpoint(
    model: nn.Module,
    *,
    epoch: int,
    args: dict[str, Any],
    metrics: dict[str, float] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The checkpoint dict for ``model`` (unwrapped from DDP) and the training state."""
    net = unwrap(model)
    ckpt: dict[str, Any] = {
        "model": net.state_dict(),
        "network": {"name": net.network_name, "kwargs": dict(net.network_kwargs or {})},
        "epoch": int(epoch),
        "args": dict(args),
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
    }
    if optimizer is not None:
        ckpt["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        ckpt["scheduler"] = scheduler.state_dict()
    if scaler is not None:
        ckpt["scaler"] = scaler.state_dict()
    if extra:
        ckpt.update(extra)
    return ckpt


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; a bad path or file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: checkpoint file not found")
    try:
        with warnings.catch_warnings():  # torch warns about old pickle protocols: noise here
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 -- any unpickling failure is a bad file
        text = str(e).strip()
        first = text.splitlines()[0].split(". ")[0] if text else type(e).__name__
        if (
            isinstance(e, (KeyError, EOFError, pickle.UnpicklingError))
            and "Weights only" not in text
        ):
            first = "not a file written by torch.save"
        raise ValueError(f"{path}: not a readable checkpoint ({first})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "network" not in ckpt:
        raise ValueError(
            f"{path}: not a checkpoint of this project (expected keys 'model' and 'network')"
        )
    return ckpt


#: ``weights`` choices of :func:`load_model` (and ``eval_net.py --weights``).
WEIGHTS = ("auto", "model", "ema")


def load_weights(
    model: nn.Module, ckpt: dict[str, Any], path: str | Path, weights: str = "auto"
) -> str:
    """Load ``ckpt``'s weights into ``model``; returns the key used.

    ``weights``: ``model`` (the trained weights), ``ema`` (their moving average, when the run
    kept one) or ``auto`` (the ones the run validated to choose best.pt: ``eval_weights``).
    A state_dict that does not fit the network is a one-line error naming ``path``.
    """
    if weights not in WEIGHTS:
        raise ValueError(f"--weights must be one of {WEIGHTS}, got {weights!r}")
    key = {"model": "model", "ema": "model_ema"}.get(weights, ckpt.get("eval_weights", "model"))
    if key not in ckpt:
        raise ValueError(f"{path}: no EMA weights in this checkpoint (trained without --model-ema)")
    try:
        unwrap(model).load_state_dict(ckpt[key])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ValueError(f"{path}: weights do not fit the network ({first})") from None
    return key


def inference_checkpoint(ckpt: dict[str, Any], weights: str = "auto") -> dict[str, Any]:
    """An inference-only copy of ``ckpt``: the weights the run validated (``weights``, as in
    :func:`load_weights`) stored as ``model``, with the network, the run's arguments, epoch and
    metrics; no optimiser or random state, so it cannot be resumed (kind ``weights``)."""
    key = {"model": "model", "ema": "model_ema"}.get(weights, ckpt.get("eval_weights", "model"))
    if key not in ckpt:
        raise ValueError("no EMA weights in this checkpoint (trained without --model-ema)")
    return {
        "model": ckpt[key],
        "network": ckpt["network"],
        "epoch": ckpt.get("epoch", 0),
        "args": ckpt.get("args", {}),
        "metrics": ckpt.get("metrics", {}),
        "kind": "weights",
        "eval_weights": "model",
    }


def load_model(
    path: str | Path, map_location: str | torch.device = "cpu", weights: str = "auto"
) -> tuple[GraspNet, dict[str, Any]]:
    """Rebuild the network stored in a checkpoint and load its weights (see
    :func:`load_weights` for ``weights``); returns (model, ckpt)."""
    ckpt = load_checkpoint(path, map_location)
    net = ckpt["network"]
    try:
        model = get_network(net["name"], **net["kwargs"])
    except (TypeError, KeyError) as e:
        raise ValueError(f"{path}: cannot rebuild network {net.get('name')!r} ({e})") from None
    load_weights(model, ckpt, path, weights)
    return model, ckpt
