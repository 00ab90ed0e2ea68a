"""Scoring a network on a loader with the rectangle metric (validation, test, eval_net.py).

:func:`evaluate` runs the network, post-processes its maps and matches the top grasps against
the ground-truth rectangles of every image on every rank's shard, then gathers the results, so
each rank returns the whole dataset's figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from models import GRASP_MAP_NAMES, grasp_map_loss
from utils.checkpoint import unwrap
from utils.distributed import all_gather_object, reduce_sum
from utils.evaluation import EvaluationResults, evaluate_batch, evaluate_raw_batch
from utils.grasp import WIDTH_SCALE
from utils.logger import RunLogger
from utils.post_process import post_process_output
from utils.precision import Precision


class DeviceSums:
    """Loss sums kept on the device, added to ``start``; read (one host sync) only when asked:
    the training loop's and evaluation's."""

    def __init__(self, start: dict[str, float]) -> None:
        self.host = dict(start)
        self.dev: dict[str, Tensor] = {}

    def add(self, values: dict[str, Tensor | float], n: int) -> None:
        for k, v in values.items():
            v = v.detach().float() if isinstance(v, Tensor) else torch.tensor(float(v))
            self.dev[k] = self.dev[k] + v * n if k in self.dev else v * n

    def read(self, also: dict[str, Tensor | float] | None = None) -> tuple[dict, dict]:
        """(sums, ``also`` as floats), both copied to the host in one transfer."""
        also = also or {}
        keys = list(self.dev)
        dev = [self.dev[k].detach().float().reshape(()) for k in keys]
        dev += [v.detach().float().reshape(()) for v in also.values() if isinstance(v, Tensor)]
        # Plain-number terms were summed on the CPU, the loss on its device: gather them on
        # one device (the first tensor's; the CPU scalars' copies are tiny), then one transfer.
        where = next((t.device for t in dev if t.device.type != "cpu"), torch.device("cpu"))
        vals = iter(torch.stack([t.to(where) for t in dev]).cpu().tolist() if dev else [])
        for k in keys:
            self.host[k] = self.host.get(k, 0.0) + next(vals)
        self.dev = {}
        extra = {k: next(vals) if isinstance(v, Tensor) else float(v) for k, v in also.items()}
        return dict(self.host), extra


@dataclass
class EvalOutput:
    """Rectangle-metric results, mean loss terms, timings (ms/image) and a few example maps."""

    results: EvaluationResults
    losses: dict[str, float] = field(default_factory=dict)
    network_ms: float = 0.0
    post_ms: float = 0.0
    examples: list[dict[str, np.ndarray]] = field(default_factory=list)


@torch.no_grad()
def predict_maps(model: nn.Module, x: Tensor, precision: Precision, device: torch.device) -> Tensor:
    """Raw N x 4 x H x W float32 maps for an input batch (eval mode is the caller's job)."""
    with precision.autocast():
        out = model(precision.to_input(x, device))
    return out.float()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    *,
    device: torch.device,
    precision: Precision,
    width_scale: float = WIDTH_SCALE,
    min_opening: float = 0.0,
    n_grasps: int = 1,
    iou_threshold: float = 0.25,
    max_batches: int | None = None,
    n_examples: int = 0,
    sample_id: Callable[[int], str] = str,
    on_batch: Callable[[dict, Tensor, tuple[np.ndarray, ...], list], None] | None = None,
    logger: RunLogger | None = None,
    desc: str = "val",
) -> EvalOutput:
    """Score ``model`` on ``loader`` with the rectangle metric, on every rank's shard.

    ms/image timings leave out the first batch (warm-up) when there is more than one.

    Results from all ranks are gathered, so each rank returns the whole dataset's figures.
    ``on_batch(batch, raw_maps, (q, angle, width), image_results)`` lets a caller write
    visualisations or submission files without a second pass.
    """
    net = unwrap(model)
    net.eval()
    results = EvaluationResults()
    # Fixed keys on every rank (even one with an empty shard), so the sums pair up.
    sums = dict.fromkeys(("loss", *GRASP_MAP_NAMES, "_net_s", "_post_s", "_timed", "_seen"), 0.0)
    loss_sums = DeviceSums({})
    first: tuple[float, float, int] | None = None  # the warm-up batch's timings
    examples: list[dict[str, np.ndarray]] = []
    total = max_batches if max_batches is not None else getattr(loader, "__len__", lambda: None)()
    it = iter(loader) if max_batches is None else _take(loader, max_batches)
    bar = logger.progress(it, total, desc) if logger else it
    for batch in bar:
        x = batch["x"]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        pred = predict_maps(net, x, precision, device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t1 = time.perf_counter()
        if "y" in batch:  # summed on the device, read once at the end
            total_loss, terms = grasp_map_loss(pred, batch["y"].to(device))
            loss_sums.add({"loss": total_loss, **terms}, len(x))
        pred_cpu = pred.cpu()
        maps: tuple[np.ndarray, ...] | None = None
        if n_grasps == 1 and on_batch is None and len(examples) >= n_examples:
            # Nothing needs whole decoded maps: decode at each image's peak only.
            image_results = evaluate_raw_batch(
                pred_cpu.float().numpy(), list(batch["gt"]), width_scale,
                iou_threshold=iou_threshold, min_opening=min_opening,
            )  # fmt: skip
        else:
            maps = post_process_output(
                pred_cpu[:, 0], pred_cpu[:, 1], pred_cpu[:, 2], pred_cpu[:, 3],
                width_scale=width_scale, min_opening=min_opening,
            )  # fmt: skip
            image_results = evaluate_batch(
                *maps, list(batch["gt"]), n_grasps=n_grasps, iou_threshold=iou_threshold
            )
        for i, res in enumerate(image_results):
            results.add(sample_id(int(batch["index"][i])), res)
        t2 = time.perf_counter()
        # The first batch pays one-off costs (kernel selection, caches): time the others.
        if first is None:
            first = (t1 - t0, t2 - t1, len(x))
        else:
            sums["_net_s"] += t1 - t0
            sums["_post_s"] += t2 - t1
            sums["_timed"] += len(x)
        sums["_seen"] += len(x)
        if maps is None:
            continue
        q, ang, wid = maps
        if on_batch is not None:
            on_batch(batch, pred_cpu, maps, image_results)
        for i in range(min(len(x), n_examples - len(examples))):
            examples.append(
                {
                    "x": x[i].float().numpy(),
                    "y": batch["y"][i].numpy() if "y" in batch else None,
                    "q": q[i],
                    "angle": ang[i],
                    "width": wid[i],
                }
            )
    for k, v in loss_sums.read()[0].items():
        sums[k] += v
    merged = EvaluationResults()
    for part in all_gather_object(results):
        merged = merged.merge(part)
    if sums["_timed"] == 0 and first is not None:  # a single batch: its time is all we have
        sums["_net_s"], sums["_post_s"], sums["_timed"] = first
    totals = reduce_sum(sums, device)
    n = max(totals.pop("_seen"), 1.0)
    timed = max(totals.pop("_timed"), 1.0)
    net_ms, post_ms = 1000 * totals.pop("_net_s") / timed, 1000 * totals.pop("_post_s") / timed
    losses = {k: v / n for k, v in totals.items()} if any(totals.values()) else {}
    return EvalOutput(merged, losses, net_ms, post_ms, examples)


def _take(loader: Iterable, n: int) -> Iterator[Any]:
    for i, batch in enumerate(loader):
        if i >= n:
            return
        yield batch
