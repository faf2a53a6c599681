"""Optional Inception FID, comparable with published numbers.

The features are the 2048-d pool features of the TF-ported Inception-v3 that the FID
literature uses, built by the `pytorch-fid` package. Its weights are a download, which
this machine may not have, so nothing here fetches them: `find_weights` looks for them in
order in `evaluate.inception_weights`, the environment variable MCL_INCEPTION_WEIGHTS,
and torch's hub cache (where `python -m mclcore.inception download` or pytorch-fid itself
puts them on a machine with internet). Found nowhere, evaluation reports the
classifier-feature metrics only.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"  # pytorch-fid's FID_WEIGHTS_URL
ENV_VAR = "MCL_INCEPTION_WEIGHTS"


class InceptionWeightsError(FileNotFoundError):
    """Inception weights were named but cannot be used."""


def hub_weights_path() -> Path:
    """Where pytorch-fid's own download leaves the weights (torch's hub cache)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def find_weights(configured: str = "") -> Path | None:
    """The weights file to use, or None when there is none (then Inception FID is skipped).

    A file named by the parameter or the environment variable must exist: naming one that
    does not is a mistake, reported with the fix, not a silent skip.
    """
    for source, value in (
        ("evaluate.inception_weights", configured),
        (ENV_VAR, os.environ.get(ENV_VAR, "")),
    ):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise InceptionWeightsError(
                    f"{source} names {path}, which is not a file; point it at "
                    f"{WEIGHTS_FILE} (run `python -m mclcore.inception download` on a machine "
                    "with internet) or leave it empty to skip Inception FID"
                )
            return path
    cached = hub_weights_path()
    return cached if cached.is_file() else None


def load_inception(weights: str | Path, device: torch.device | str = "cpu") -> torch.nn.Module:
    """pytorch-fid's FID Inception (pool3, 2048 features) with the weights from `weights`.

    pytorch-fid loads its weights through torch's hub cache; pointing a private, temporary
    hub directory at the given file makes it read that file and never download.
    """
    from pytorch_fid.inception import InceptionV3

    with tempfile.TemporaryDirectory() as hub:
        (Path(hub) / "checkpoints").mkdir()
        (Path(hub) / "checkpoints" / WEIGHTS_FILE).symlink_to(Path(weights).resolve())
        previous = torch.hub.get_dir()
        torch.hub.set_dir(hub)
        try:
            model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
        except RuntimeError as err:
            raise InceptionWeightsError(
                f"{weights} is not the FID Inception state dict ({err}); use {WEIGHTS_FILE}"
            ) from err
        finally:
            torch.hub.set_dir(previous)
    return model.to(device).eval().requires_grad_(False)


@torch.no_grad()
def inception_features(
    model: torch.nn.Module, images: np.ndarray, batch_size: int = 200
) -> np.ndarray:
    """[N, 2048] features of uint8 grey images [N, h, w]: scaled to [0, 1], repeated to
    three channels; the model resizes to 299 x 299 and normalises itself."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start : start + batch_size]).float().div(255.0)
        x = x[:, None].expand(-1, 3, -1, -1).to(device)
        out.append(model(x)[0].flatten(1).cpu())
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros((0, 2048))


def download() -> Path:
    """Fetch the weights into torch's hub cache (needs internet); returns their path."""
    from pytorch_fid.inception import FID_WEIGHTS_URL

    torch.hub.load_state_dict_from_url(FID_WEIGHTS_URL, progress=True)
    return hub_weights_path()


if __name__ == "__main__":
    if sys.argv[1:] != ["download"]:
        sys.exit("usage: python -m mclcore.inception download")
    from mclcore.runtime import run_stage

    run_stage(
        lambda: logging.getLogger("mclcore.inception").info(
            "Inception FID weights in %s", download()
        )
    )
