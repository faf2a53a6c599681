"""Fetching, verifying and loading MNIST-format datasets.

Sources are tried in order: the folder or URL in the environment variable
`MCL_DATA_MIRROR` when it is set (and then only it), else the public mirrors. A file is
accepted when either the MD5 of its compressed bytes matches the official archive, or the
MD5 / SHA-256 of its decompressed content matches: recompressed mirrors change the first
but not the second.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mclcore.idx import IdxFormatError, maybe_decompress, parse_idx

log = logging.getLogger(__name__)

MIRROR_ENV = "MCL_DATA_MIRROR"
FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class DataError(RuntimeError):
    """A dataset file that is missing, truncated, corrupt or of the wrong shape."""


@dataclass(frozen=True)
class Checksums:
    """Accepted digests of one file: of the official .gz, and of the decompressed IDX bytes."""

    gz_md5: str = ""
    raw_md5: str = ""
    raw_sha256: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: where it is published and the digests of its four files."""

    name: str
    urls: tuple[str, ...]
    checksums: dict[str, Checksums]


MNIST = DatasetSpec(
    name="mnist",
    urls=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    checksums={
        "train-images-idx3-ubyte": Checksums(gz_md5="f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        "train-labels-idx1-ubyte": Checksums(
            gz_md5="d53e105ee54ea40749a09fcbcd1e9432", raw_md5="a25bea736e30d166cdddb491f175f624"
        ),
        "t10k-images-idx3-ubyte": Checksums(
            gz_md5="9fb629c4189551a2d022fa330f9573f3",
            raw_md5="2646ac647ad5339dbf082846283269ea",
            raw_sha256="0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
        "t10k-labels-idx1-ubyte": Checksums(
            gz_md5="ec29112dd5afa0611ce80d1b7f02629c",
            raw_md5="27ae3e4e09519cfbb04c329615203637",
            raw_sha256="ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    },
)

FASHION_MNIST = DatasetSpec(
    name="fashion_mnist",
    urls=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    checksums={
        "train-images-idx3-ubyte": Checksums(
            gz_md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            raw_md5="f4a8712d7a061bf5bd6d2ca38dc4d50a",
            raw_sha256="c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        "train-labels-idx1-ubyte": Checksums(
            gz_md5="25c81989df183df01b3e8a0aad5dffbe",
            raw_md5="9018921c3c673c538a1fc5bad174d6f9",
            raw_sha256="bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        "t10k-images-idx3-ubyte": Checksums(
            gz_md5="bef4ecab320f06d8554ea6380940ec79",
            raw_md5="8181f5470baa50b63fa0f6fddb340f0a",
            raw_sha256="5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
        "t10k-labels-idx1-ubyte": Checksums(
            gz_md5="bb300cfdad3c16e7a12a480ee83cd310",
            raw_md5="15d484375f8d13e6eb1aabb0c3f46965",
            raw_sha256="0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    },
)

SPECS = {spec.name: spec for spec in (MNIST, FASHION_MNIST)}


def verify(name: str, payload: bytes, raw: bytes, expected: Checksums, source: str) -> None:
    """Raise `DataError` unless the compressed or decompressed bytes match a known digest."""
    candidates = [
        (expected.gz_md5, hashlib.md5(payload).hexdigest()),
        (expected.raw_md5, hashlib.md5(raw).hexdigest()),
        (expected.raw_sha256, hashlib.sha256(raw).hexdigest()),
    ]
    if any(want and want == got for want, got in candidates):
        return
    raise DataError(
        f"{name} from {source} fails its checksum (MD5 of the file {candidates[0][1]}, "
        f"MD5 of its content {candidates[1][1]}): the file is truncated, corrupt or not "
        f"this dataset's. Delete it at the source and fetch it again, or point {MIRROR_ENV} "
        "at a good copy."
    )


def _read_source(base: str, filename: str) -> bytes:
    """Bytes of `filename` under a URL or a local folder; raises FileNotFoundError."""
    if "://" in base and not base.startswith("file://"):
        url = base.rstrip("/") + "/" + filename
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                return response.read()
        except urllib.error.HTTPError as err:
            raise FileNotFoundError(f"{url}: HTTP {err.code}") from err
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            raise FileNotFoundError(f"{url}: {err}") from err
    folder = Path(base.removeprefix("file://")).expanduser()
    path = folder / filename
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return path.read_bytes()


def fetch_file(name: str, sources: list[str], expected: Checksums | None) -> tuple[bytes, str]:
    """Decompressed, verified bytes of one IDX file and the place it came from.

    Each source is tried with `name.gz`, then `name`. `expected` None skips the checksum
    (a folder of the user's own files) but the content must still parse as IDX.
    """
    failures = []
    for base in sources:
        for filename in (name + ".gz", name):
            location = f"{base.rstrip('/')}/{filename}"
            try:
                payload = _read_source(base, filename)
            except FileNotFoundError as err:
                failures.append(str(err))
                continue
            try:
                raw = maybe_decompress(payload)
            except (OSError, EOFError) as err:
                raise DataError(
                    f"{name} from {location} is not a valid gzip file ({err}): it is truncated "
                    "or corrupt; fetch it again"
                ) from err
            if expected is not None:
                verify(name, payload, raw, expected, location)
            try:
                parse_idx(raw, f"{name} from {location}")
            except IdxFormatError as err:
                raise DataError(str(err)) from err
            return raw, location
    raise DataError(
        f"{name} could not be found at any source: {'; '.join(failures)}. Without internet, "
        f"set {MIRROR_ENV} to a folder holding the four IDX files."
    )


def sources_for(dataset: str, idx_folder: str = "") -> list[str]:
    """The places to look for a dataset's files, in order."""
    if dataset == "idx_folder":
        return [idx_folder]
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if mirror:
        return [mirror]
    return list(SPECS[dataset].urls)


def download(dataset: str, out_dir: str | Path, idx_folder: str = "") -> dict:
    """Fetch and verify the four files into `out_dir`, atomically; returns the manifest."""
    out_dir = Path(out_dir)
    sources = sources_for(dataset, idx_folder)
    spec = SPECS.get(dataset)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        manifest = {"dataset": dataset, "files": {}}
        for name in FILES:
            expected = spec.checksums[name] if spec else None
            raw, location = fetch_file(name, sources, expected)
            (staging / name).write_bytes(raw)
            # Where a file came from stays out of the output: the same data fetched from
            # another mirror must give the same output, so downstream stages stay cached.
            manifest["files"][name] = {
                "sha256": hashlib.sha256(raw).hexdigest(),
                "verified": expected is not None,
            }
            log.info("%s: %d bytes from %s", name, len(raw), location)
        check_split(load_split(staging, "train"), "train", staging)
        check_split(load_split(staging, "test"), "test", staging)
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return manifest


def load_split(data_dir: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28], labels int64 [N]) of the train or test split."""
    from mclcore.idx import read_idx

    prefix = {"train": "train", "test": "t10k"}[split]
    data_dir = Path(data_dir)
    images = read_idx(data_dir / f"{prefix}-images-idx3-ubyte")
    labels = read_idx(data_dir / f"{prefix}-labels-idx1-ubyte")
    return images, labels.astype(np.int64)


def check_split(split: tuple[np.ndarray, np.ndarray], name: str, where: Path) -> None:
    """Raise `DataError` unless the split holds 28x28 uint8 images, one label each."""
    images, labels = split
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DataError(
            f"{where}: {name} images have shape {images.shape} and type {images.dtype}; the "
            "networks need unsigned-byte images of 28x28 pixels (resize them first)"
        )
    if labels.shape != (len(images),):
        raise DataError(
            f"{where}: {len(images)} {name} images but labels of shape {labels.shape}; "
            "every image needs exactly one label"
        )
    if labels.min() < 0:
        raise DataError(f"{where}: {name} labels must be non-negative class indices")


def holdout_split(n_train: int, holdout: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held out) of the training split; the held-out ones are never trained on."""
    if holdout >= n_train:
        raise DataError(
            f"data.holdout={holdout} leaves no training images out of {n_train}; lower it"
        )
    order = np.random.default_rng(seed).permutation(n_train)
    return np.sort(order[holdout:]), np.sort(order[:holdout])


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [-1, 1], the centred range the score networks see."""
    return images.astype(np.float32) / 127.5 - 1.0


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Float images in [-1, 1] -> uint8 pixels, clipped and rounded."""
    return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Splits:
    """The three image sets every stage agrees on, as uint8 [N, 28, 28] with labels."""

    train_images: np.ndarray
    train_labels: np.ndarray
    holdout_images: np.ndarray
    holdout_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def load_splits(data_dir: str | Path, holdout: int, split_seed: int) -> Splits:
    """Training images minus a seeded held-out set, the held-out set, and the test set."""
    train_images, train_labels = load_split(data_dir, "train")
    test_images, test_labels = load_split(data_dir, "test")
    train_ids, held_ids = holdout_split(len(train_images), holdout, split_seed)
    return Splits(
        train_images[train_ids],
        train_labels[train_ids],
        train_images[held_ids],
        train_labels[held_ids],
        test_images,
        test_labels,
    )


def as_tensor(images: np.ndarray):
    """uint8 [N, 28, 28] -> float32 tensor [N, 1, 28, 28] in [-1, 1]."""
    import torch

    return torch.from_numpy(to_unit_range(images)).unsqueeze(1)
