"""DVC stage `download`: fetch and verify the dataset named in params.yaml into data/raw/."""

import logging

from mclcore import tracking
from mclcore.config import as_flat_dict, load_params
from mclcore.datasets import download
from mclcore.runtime import run_stage

OUT = "data/raw"


def main() -> None:
    data = load_params().data
    with tracking.stage_run("download", as_flat_dict(data, "data.")):
        manifest = download(data.dataset, OUT, data.idx_folder)
        tracking.log_artifact(f"{OUT}/manifest.json")
    logging.getLogger("download").info("%s ready in %s", manifest["dataset"], OUT)


if __name__ == "__main__":
    run_stage(main)
