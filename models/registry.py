"""Name -> constructor registry for grasp networks (timm style).

Networks register themselves with ``@register_network("name")``; ``get_network`` builds one
by name, validates the keyword arguments against the constructor's signature and records what
is needed to rebuild the identical architecture from a checkpoint:

* ``model.network_name``   -- the registry name;
* ``model.network_kwargs`` -- every architecture keyword argument, defaults resolved, as plain
  JSON-serialisable values, so ``get_network(model.network_name, **model.network_kwargs)``
  rebuilds the same module tree (same ``state_dict`` keys and shapes);
* ``model.init_kwargs``    -- initialisation-only arguments (e.g. ``pretrained_backbone``). They
  are kept out of ``network_kwargs`` on purpose: a checkpoint's own weights overwrite them, and
  rebuilding must not require the original pretrained file to exist on the new machine.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from torch import nn

from .base import GraspNet

__all__ = ["get_network", "list_networks", "register_network"]

_T = TypeVar("_T", bound=Callable[..., nn.Module])


class _Entry:
    """A registered constructor and the names of its initialisation-only kwargs."""

    def __init__(self, builder: Callable[..., nn.Module], init_only: frozenset[str]) -> None:
        self.builder = builder
        self.init_only = init_only


_REGISTRY: dict[str, _Entry] = {}


def register_network(name: str, *, init_only: Iterable[str] = ()) -> Callable[[_T], _T]:
    """Class/function decorator registering a network constructor under ``name``.

    Args:
        name: registry name (case-sensitive); registering the same name twice is an error.
        init_only: keyword arguments that only affect initialisation (not the architecture);
            they are recorded in ``model.init_kwargs`` instead of ``model.network_kwargs``.
    """
    init_only_set = frozenset(init_only)

    def decorator(builder: _T) -> _T:
        if name in _REGISTRY:
            raise ValueError(f"network {name!r} is already registered")
        _REGISTRY[name] = _Entry(builder, init_only_set)
        return builder

    return decorator


def list_networks() -> list[str]:
    """Sorted names of all registered networks."""
    return sorted(_REGISTRY)


def _plain(value: Any, where: str) -> Any:
    """Convert ``value`` to a JSON-serialisable plain value (paths -> str, tuples -> lists)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, tuple):
        value = list(value)
    try:
        json.dumps(value)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{where}: value {value!r} is not a plain JSON-serialisable value "
            "(needed so a checkpoint can rebuild the network)"
        ) from err
    return value


def get_network(name: str, **kwargs: Any) -> GraspNet:
    """Build the network registered as ``name`` with constructor keyword arguments ``kwargs``.

    Raises:
        ValueError: unknown ``name`` (the message lists the registered names).
        TypeError: a keyword argument the network does not accept (the message names it and
            lists the accepted ones), or a value that is not JSON-serialisable.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown network {name!r}; registered networks: {list_networks()}")
    entry = _REGISTRY[name]
    signature = inspect.signature(entry.builder)
    accepted = [
        p.name
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(
            f"get_network({name!r}): unknown keyword argument(s) {unknown}; accepted: {accepted}"
        )
    bound = signature.bind(**kwargs)
    bound.apply_defaults()
    resolved = {
        k: _plain(v, f"get_network({name!r}) argument {k!r}") for k, v in bound.arguments.items()
    }

    model = entry.builder(**resolved)
    # Plain attributes (not buffers): they travel with the object, a training script stores
    # them next to the state_dict.
    model.network_name = name
    model.network_kwargs = {k: v for k, v in resolved.items() if k not in entry.init_only}
    model.init_kwargs = {k: v for k, v in resolved.items() if k in entry.init_only}
    return model
