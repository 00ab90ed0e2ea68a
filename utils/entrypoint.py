"""How a script's process ends: one line on stderr and an exit code, never a bare traceback
for bad input.

Exit codes: 0 success; 2 bad usage or input (a flag, file, dataset or checkpoint: the message
names it), a diverged loss included for now; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def run_main(main: Callable[[Any], Any], parse_args: Callable[[], Any]) -> None:
    """Run ``main(parse_args())``. Parsing is inside the handler too: flags that read files
    (``--resume`` reads its checkpoint) fail as cleanly as any other bad flag.

    ValueError (bad files and flags), OSError (paths that cannot be read or written) and
    FloatingPointError (a diverging run) end in one line with exit code 2; anything else is a
    bug and keeps its traceback.
    """
    try:
        main(parse_args())
    except (ValueError, OSError, FloatingPointError) as e:
        text = str(e).strip()
        if "Original Traceback" in text:
            # Raised in a DataLoader worker: torch wraps the worker's whole traceback; the
            # last line is our own message naming the file.
            text = text.splitlines()[-1].split(": ", 1)[-1]
        print(f"error: {text}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(
            "interrupted: last.pt holds the last completed epoch (or --checkpoint-every step), "
            "if there was one",
            file=sys.stderr,
        )
        sys.exit(130)
