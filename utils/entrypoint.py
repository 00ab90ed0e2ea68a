"""How a script's process ends: one line on stderr and an exit code, never a bare traceback
for bad input; and how a training run stops when asked to (SIGTERM, SIGINT).

Exit codes (README, Reliability):

- 0: success;
- 1: a bug (an unexpected exception, with its traceback);
- 2: bad usage or input: a flag, file, dataset or checkpoint (the message names it), or a
  file that cannot be read or written;
- 3: the loss diverged (non-finite on some rank);
- 75: stopped by SIGTERM or SIGINT after writing a resumable ``last.pt`` (EX_TEMPFAIL: a job
  scheduler may requeue the command with ``--resume``);
- 130: interrupted with nothing new saved (a second signal, or one before training began).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_BUG, EXIT_BAD_INPUT, EXIT_DIVERGED = 0, 1, 2, 3
EXIT_STOPPED_SAVED, EXIT_INTERRUPTED = 75, 130


class Interrupted(Exception):
    """A training run stopped on a signal after saving ``checkpoint`` (resumable exactly).

    ``script``: the training script that resumes it (``train_net.py``, ``distill.py``, ...);
    default the running program's name, which is another one when a benchmark drives the run.
    """

    def __init__(
        self, signame: str, checkpoint: Path, where: str, script: str | None = None
    ) -> None:
        self.signame, self.checkpoint, self.where = signame, Path(checkpoint), where
        world = _world_size()
        launcher = f"torchrun --nproc_per_node={world}" if world > 1 else "python"
        script = script or Path(sys.argv[0]).name
        #: What happened, without how to resume (a driver that resumes differently says its own).
        self.stopped = f"stopped by {signame} {where}: saved {self.checkpoint}"
        super().__init__(
            f"{self.stopped}; resume with {launcher} {script} --resume {self.checkpoint}"
        )


class StopRequest:
    """SIGTERM / SIGINT asks the training loop to stop after the current step: the first
    signal sets :attr:`signame`, which the loop polls (:meth:`requested`); a second one, more
    than :attr:`REPEAT_S` later, ends the process at once (SIGINT as KeyboardInterrupt,
    SIGTERM by its default action)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    #: Seconds after the first signal in which another counts as the same request: Ctrl-C
    #: under torchrun reaches each worker twice (from the terminal and from torchrun).
    REPEAT_S = 2.0

    def __init__(self) -> None:
        self.signame: str | None = None
        self._at = 0.0

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signame is not None and time.monotonic() - self._at < self.REPEAT_S:
            return
        if self.signame is not None:  # a second signal: no more waiting
            signal.signal(signum, signal.SIG_DFL)
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signum)
            return
        self.signame, self._at = signal.Signals(signum).name, time.monotonic()

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Handle the signals inside the block (main thread only; elsewhere a no-op)."""
        self.signame = None
        try:
            old = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        except ValueError:  # not the main thread: leave the defaults
            yield self
            return
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def requested(self) -> bool:
        return self.signame is not None


#: The process's one stop request, polled by :func:`utils.training.train_one_epoch`.
STOP = StopRequest()


def _is_main_rank() -> bool:
    return os.environ.get("RANK", "0") == "0"


def run_main(main: Callable[[Any], Any], parse_args: Callable[[], Any]) -> None:
    """Run ``main(parse_args())`` and end with the exit codes above. Parsing is inside the
    handler too: flags that read files (``--resume`` reads its checkpoint) fail as cleanly as
    any other bad flag. Messages print once, on the main rank. A torchrun worker (WORLD_SIZE
    above 1) does not return: it ends here, unfinalized (:func:`_exit_without_finalizing`)."""
    code, text = EXIT_OK, ""
    try:
        main(parse_args())
    except Interrupted as e:
        code, text = EXIT_STOPPED_SAVED, str(e)
    except FloatingPointError as e:
        code, text = EXIT_DIVERGED, f"error: {e}"
    except (ValueError, OSError) as e:
        text = str(e).strip()
        if "Original Traceback" in text:
            # Raised in a DataLoader worker: torch wraps the worker's whole traceback; the
            # last line is our own message naming the file.
            text = text.splitlines()[-1].split(": ", 1)[-1]
        code, text = EXIT_BAD_INPUT, f"error: {text}"
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
        text = "interrupted: nothing new saved (a run's last.pt, if any, is from before)"
    except Exception:
        if _world_size() == 1:
            raise
        traceback.print_exc()  # a bug: its traceback, then the exit below
        code = EXIT_BUG
    if text and _is_main_rank():
        print(text, file=sys.stderr, flush=True)
    if _world_size() > 1:
        _exit_without_finalizing(code)
    if code:
        sys.exit(code)


def _world_size() -> int:
    """The process count torchrun launched (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _exit_without_finalizing(code: int) -> None:
    """End a torchrun worker without the interpreter's finalization.

    DistributedDataParallel keeps a reference to the process group, so gloo's worker threads
    outlive destroy_process_group. One still freeing a finished collective when the
    interpreter finalizes cannot take the GIL, is ended there, and std::terminate aborts the
    process (SIGABRT, "terminate called without an active exception") after a run that had
    written everything, now and then on 2 busy cores (PyTorch 2.13; the crash of
    pytorch/pytorch#179291, a pull request closed unmerged). Everything this project writes
    is closed by now (atomic writes, the TensorBoard log): only the standard streams need
    flushing."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
