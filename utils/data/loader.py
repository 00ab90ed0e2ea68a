"""DataLoaders whose order and augmentation are a function of (seed, epoch, position).

:class:`EpochBatchSampler` makes the batches of one epoch: a permutation of the indices fixed by
the run's seed and the epoch (:func:`utils.seeding.epoch_permutation`), sharded across ranks
like ``DistributedSampler`` (padded to a multiple of the world size, every world_size-th
sample), cut into batches. Each item carries its own augmentation seed
(:func:`utils.seeding.item_seed` of its position in the epoch), which :class:`SeededItems`
hands to the dataset. So:

- an epoch's batches are identical with 0 or N workers, and on every restart;
- :meth:`EpochBatchSampler.start_at` resumes inside an epoch at batch k without loading the
  k batches before it (what ``--checkpoint-every`` needs on 54k-image Jacquard epochs).

Evaluation loaders (``shuffle=False``) take every world_size-th index with no padding, so
gathered results count each image exactly once, and apply no augmentation.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import sys
import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from utils.seeding import epoch_permutation, item_seed


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of ``(dataset index, augmentation seed)`` pairs for one epoch at a time.

    Args:
        indices: the dataset indices to draw from (a split part).
        batch_size: per-rank batch size.
        shuffle: a new permutation every epoch; False keeps ``indices`` in order.
        seed: the run's seed.
        rank, world_size: this process's shard.
        drop_last: drop a final short batch.
        pad: give every rank the same number of samples (repeating the start of the order), as
            training needs (each step is a collective); default: ``shuffle``. Evaluation
            shards are unpadded so that each image counts once.
        stream: which loader of the run this is (0 labelled, 1 unlabelled): loaders with the
            same seed still draw different orders and augmentations.
    """

    def __init__(
        self,
        indices: Sequence[int],
        batch_size: int,
        *,
        shuffle: bool,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        pad: bool | None = None,
        stream: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
        self.indices = list(indices)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.drop_last = bool(drop_last)
        self.pad = self.shuffle if pad is None else bool(pad)
        self.stream = int(stream)
        self.epoch = 0
        self.pass_index = 0
        self._start = 0

    def set_epoch(self, epoch: int, pass_index: int = 0) -> None:
        """Use the order of pass ``pass_index`` of ``epoch`` from the next iteration (from its
        first batch). A loader shorter than the epoch makes several passes."""
        self.epoch = int(epoch)
        self.pass_index = int(pass_index)
        self._start = 0

    def start_at(self, batch: int) -> None:
        """Make the next iteration begin at batch ``batch`` of the current epoch (once)."""
        if not 0 <= batch <= len(self):
            raise ValueError(f"batch {batch} out of range for an epoch of {len(self)} batches")
        self._start = int(batch)

    def _order(self) -> list[int]:
        """Positions into ``indices`` that this rank takes this pass, in order."""
        n = len(self.indices)
        if not self.pad:
            return list(range(self.rank, n, self.world_size))
        if self.shuffle:
            order = epoch_permutation(n, self.seed, self.epoch, self.stream, self.pass_index)
        else:
            order = list(range(n))
        if self.world_size > 1 and n:
            # Pad with the start of the order so every rank gets the same number of batches.
            total = math.ceil(n / self.world_size) * self.world_size
            order = (order * (total // n + 1))[:total][self.rank :: self.world_size]
        return order

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = self._order()
        start, self._start = self._start, 0
        rank_offset = self.rank * len(order)  # distinct augmentation seeds on every rank
        for b in range(start, len(self)):
            chunk = range(b * self.batch_size, min((b + 1) * self.batch_size, len(order)))
            yield [
                (
                    self.indices[order[p]],
                    item_seed(self.seed, self.epoch, rank_offset + p, self.stream, self.pass_index),
                )
                for p in chunk
            ]

    def __len__(self) -> int:
        n = len(self.indices)
        if self.pad:
            per_rank = math.ceil(n / self.world_size) if n else 0
        else:
            per_rank = len(range(self.rank, n, self.world_size))
        if self.drop_last:
            return per_rank // self.batch_size
        return math.ceil(per_rank / self.batch_size)


class SeededItems(Dataset):
    """Wraps a dataset so that ``ds[(index, seed)]`` draws the item's augmentation from a
    generator seeded with ``seed`` (through the dataset's ``item(index, generator)``; datasets
    without one are indexed plainly). The DataLoader fetches a batch through
    :meth:`__getitems__`: a :class:`~utils.data.base.GraspDataset` makes the batch's items
    together (``batch_items``), other datasets one at a time."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int] | int) -> Any:
        if isinstance(key, tuple):
            index, seed = key
            if hasattr(self.dataset, "item"):
                return self.dataset.item(index, torch.Generator().manual_seed(seed))
            key = index
        return self.dataset[key]

    def __getitems__(self, keys: list[tuple[int, int] | int]) -> list[Any]:
        """A batch's items (the DataLoader's batched fetch): through
        :meth:`utils.data.base.GraspDataset.batch_items` for a grasp dataset (the batch's
        targets drawn together), else one at a time; the same items either way."""
        from utils.data.base import GraspDataset

        if isinstance(self.dataset, GraspDataset) and all(isinstance(k, tuple) for k in keys):
            generators = [(i, torch.Generator().manual_seed(seed)) for i, seed in keys]
            return self.dataset.batch_items(generators)
        return [self[k] for k in keys]


def make_loader(
    dataset: Dataset,
    indices: Sequence[int],
    batch_size: int,
    *,
    shuffle: bool,
    num_workers: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = False,
    pad: bool | None = None,
    stream: int = 0,
    collate_fn: Any = None,
) -> DataLoader:
    """A loader over ``indices`` of ``dataset`` with an :class:`EpochBatchSampler` (see it for
    ``pad`` and ``stream``)."""
    from utils.data.base import collate_grasp_batch

    sampler = EpochBatchSampler(
        indices,
        batch_size,
        shuffle=shuffle,
        seed=seed,
        rank=rank,
        world_size=world_size,
        drop_last=drop_last,
        pad=pad,
        stream=stream,
    )
    return DataLoader(
        SeededItems(dataset),
        batch_sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_fn or collate_grasp_batch,
        # A fixed generator: creating an iterator then never draws from torch's global RNG.
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
    )


def _put_unless_stopped(q: queue.Queue, stop: threading.Event, entry: tuple[str, Any]) -> bool:
    while not stop.is_set():
        try:
            q.put(entry, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


#: Whether a thread's CPU priority can be lowered alone (:func:`lower_thread_priority`).
PER_THREAD_PRIORITY = sys.platform.startswith("linux")


def lower_thread_priority() -> bool:
    """Give the calling thread the lowest CPU priority (Linux: nice 19, for this thread alone
    and the threads it starts later), so that other threads of the process go first; False
    where the OS has no per-thread priority (elsewhere ``setpriority`` would name a process)
    or refuses."""
    if not PER_THREAD_PRIORITY:
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except OSError:
        return False
    return True


def _fill(
    source: Any,
    q: queue.Queue,
    stop: threading.Event,
    cuda_device: int | None,
    low_priority: bool,
) -> None:
    """The prefetch thread's body: a function of its parts, not a method, so the thread does
    not keep its :class:`ThreadPrefetcher` alive (which lets garbage collection stop it)."""
    it = None
    try:
        if low_priority:
            lower_thread_priority()
        if cuda_device is not None:
            torch.cuda.set_device(cuda_device)
        it = iter(source)
        for item in it:
            if not _put_unless_stopped(q, stop, ("item", item)):
                return
        _put_unless_stopped(q, stop, ("end", None))
    except BaseException as e:  # handed to the consumer, raised there
        _put_unless_stopped(q, stop, ("error", e))
    finally:
        close = getattr(it, "close", None)  # a generator's or loader iterator's resources
        if callable(close):
            with contextlib.suppress(Exception):
                close()


class ThreadPrefetcher:
    """Iterates ``iterable`` in a background thread, ``depth`` items ahead of the consumer.

    For in-process loading (``--num-workers 0``): the next batch is made while the training
    step runs, in the same process, so nothing is copied between processes. The items and
    their order are those of ``iterable`` itself (each carries its own augmentation seed, and
    the thread draws nothing from torch's global generator), so results do not change. An
    exception in the thread is raised in the consumer at the item where it happened.
    :meth:`close` (also leaving a ``with`` block; garbage collection signals the thread to
    stop) stops the thread after at most the item it is making, discarding the items made
    ahead.

    ``low_priority``: the thread runs at the lowest CPU priority where the OS allows it
    (:func:`lower_thread_priority`), so on a machine whose cores the training step's threads
    fill, the step goes first and the loading takes the time they leave (the consumer waits
    only when that was not enough)."""

    def __init__(self, iterable: Any, depth: int = 2, low_priority: bool = False) -> None:
        if depth < 1:
            raise ValueError(f"prefetch depth must be >= 1, got {depth}")
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        # Pinned copies (on CUDA) are made on the consumer's device, not the thread's default.
        cuda_device = torch.cuda.current_device() if torch.cuda.is_initialized() else None
        self._thread = threading.Thread(
            target=_fill,
            args=(iterable, self._queue, self._stop, cuda_device, low_priority),
            name="batch-prefetch",
            daemon=True,
        )
        weakref.finalize(self, self._stop.set)
        self._thread.start()

    def __iter__(self) -> ThreadPrefetcher:
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        kind, value = self._queue.get()
        if kind == "item":
            return value
        self._done = True
        self._thread.join()
        if kind == "error":
            raise value
        raise StopIteration

    def close(self) -> None:
        """Stop the thread and drop what it made ahead (idempotent)."""
        self._done = True
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.1)
        self._thread.join()

    def __enter__(self) -> ThreadPrefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
