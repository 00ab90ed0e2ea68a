"""Run logging: TensorBoard (tensorboardX), progress bars and one summary line per epoch.

Only rank 0 logs; other ranks get a :class:`RunLogger` that does nothing, so callers never
branch on the rank. (Named ``logger`` rather than ``logging`` so it never shadows the standard
library module.)
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm


class RunLogger:
    """Scalars and images to TensorBoard under ``logdir`` (None: no TensorBoard), on rank 0."""

    def __init__(self, logdir: str | Path | None, enabled: bool = True) -> None:
        self.enabled = enabled
        self.writer = None
        if enabled and logdir is not None:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(str(logdir))

    def scalars(self, values: dict[str, float], step: int, prefix: str = "") -> None:
        if self.writer is None:
            return
        for k, v in values.items():
            self.writer.add_scalar(f"{prefix}{k}", float(v), step)

    def images(self, tag: str, images: np.ndarray, step: int) -> None:
        """``images``: N x H x W x 3 uint8 (or float in [0, 1])."""
        if self.writer is not None and len(images):
            self.writer.add_images(tag, images, step, dataformats="NHWC")

    def progress(self, iterable: Iterable, total: int | None, desc: str) -> Iterable:
        """A tqdm bar on rank 0 when attached to a terminal; the plain iterable otherwise."""
        if not self.enabled:
            return iterable
        return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True, disable=None)

    def print(self, *args: Any) -> None:
        if self.enabled:
            print(*args, flush=True, file=sys.stdout)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def format_epoch_summary(epoch: int, epochs: int, values: dict[str, float], seconds: float) -> str:
    """One line: ``epoch 3/10 | loss 0.0123 | val_success 0.912 | ... | 45.2 s``."""
    parts = [f"epoch {epoch}/{epochs}"]
    for k, v in values.items():
        parts.append(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
    parts.append(f"{seconds:.1f} s")
    return " | ".join(parts)
