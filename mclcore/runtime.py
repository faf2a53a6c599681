"""What every stage script does first: logging, the device, and errors a user can fix."""

from __future__ import annotations

import logging
import sys
from typing import Callable

import torch

from mclcore.checkpoints import CheckpointError
from mclcore.config import ParamsError
from mclcore.datasets import DataError
from mclcore.idx import IdxFormatError

USER_ERRORS = (ParamsError, DataError, CheckpointError, IdxFormatError, FileNotFoundError)


def select_device() -> torch.device:
    """CUDA when a GPU is visible, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(); a user-fixable error prints one line, not a traceback."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        main()
    except USER_ERRORS as err:
        logging.getLogger("mclcore").error("%s", err)
        sys.exit(2)
