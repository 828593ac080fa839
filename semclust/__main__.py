"""``python -m semclust``: the command line, also as ``torchrun --nproc-per-node N -m semclust ...``.

Under torchrun every process runs the same command. The training loops join the process group
themselves (the SSL trainer, LAIC); rank 0 writes the run's files and prints, the other ranks'
console is quiet (progress bars and summaries once). After a command that succeeded every rank
meets the others and leaves the group (a rank that tore down its connections while a peer still
used them would make the peer abort); after a failure the process just exits and torchrun stops
the other ranks.
"""

from __future__ import annotations

import os
import sys


def _main() -> None:
    from semclust.cli.main import main

    rank = os.environ.get("RANK", "0") or "0"
    if rank != "0":
        from semclust.cli.progress import console

        console.quiet = True
    try:
        main()
    except SystemExit as stop:
        if stop.code in (None, 0):
            _leave_process_group()
        elif rank != "0":  # its own message went to the quiet console
            print(f"semclust: rank {rank} stopped with exit code {stop.code}", file=sys.stderr)
        raise
    _leave_process_group()


def _leave_process_group() -> None:
    if "torch.distributed" in sys.modules:  # no group can have been joined without it
        from semclust.distributed import leave_process_group

        leave_process_group()


if __name__ == "__main__":
    _main()
