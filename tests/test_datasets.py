import gzip
import hashlib
import os

import numpy as np
import pytest

from conftest import FASHION, write_idx_folder
from mclcore import datasets
from mclcore.datasets import Checksums, DatasetSpec, DataError, download, fetch_file, load_splits


def spec_for(folder, name="tiny"):
    """A DatasetSpec whose checksums are the official-archive kind for the files in folder."""
    sums = {
        f: Checksums(gz_md5=hashlib.md5((folder / f"{f}.gz").read_bytes()).hexdigest())
        for f in datasets.FILES
    }
    return DatasetSpec(name=name, urls=("http://127.0.0.1:9/none/",), checksums=sums)


@pytest.fixture
def tiny_spec(idx_folder, monkeypatch):
    spec = spec_for(idx_folder)
    monkeypatch.setitem(datasets.SPECS, "tiny", spec)
    monkeypatch.setenv(datasets.MIRROR_ENV, str(idx_folder))
    return spec


def test_download_from_mirror_writes_four_verified_files(tiny_spec, idx_folder, tmp_path):
    manifest = download("tiny", tmp_path / "raw")
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted(
        [*datasets.FILES, "manifest.json"]
    )
    assert all(entry["verified"] for entry in manifest["files"].values())
    splits = load_splits(tmp_path / "raw", holdout=100, split_seed=0)
    assert splits.train_images.shape == (500, 28, 28) and splits.holdout_images.shape[0] == 100


def test_recompressed_file_passes_on_its_decompressed_checksum(tmp_path):
    raw = (b"\x00\x00\x08\x01" + (3).to_bytes(4, "big")) + bytes([1, 2, 3])
    (tmp_path / "labels.gz").write_bytes(gzip.compress(raw, compresslevel=1))
    expected = Checksums(gz_md5="0" * 32, raw_md5=hashlib.md5(raw).hexdigest())
    content, source = fetch_file("labels", [str(tmp_path)], expected)
    assert content == raw and source.endswith("labels.gz")


def test_corrupt_file_names_the_file_and_the_source(tiny_spec, idx_folder, tmp_path):
    target = idx_folder / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(target.read_bytes()))
    data[20] ^= 0xFF
    target.write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte from .*idx.*checksum"):
        download("tiny", tmp_path / "raw")
    assert not (tmp_path / "raw").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".raw")]


def test_truncated_gzip_is_an_error_and_keeps_the_previous_output(tiny_spec, idx_folder, tmp_path):
    download("tiny", tmp_path / "raw")
    before = (tmp_path / "raw" / "train-images-idx3-ubyte").read_bytes()
    target = idx_folder / "train-images-idx3-ubyte.gz"
    target.write_bytes(target.read_bytes()[:5000])
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        download("tiny", tmp_path / "raw")
    assert (tmp_path / "raw" / "train-images-idx3-ubyte").read_bytes() == before


def test_missing_file_says_where_it_looked_and_how_to_fix(tiny_spec, idx_folder, tmp_path):
    (idx_folder / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte could not be found.*MCL_DATA"):
        download("tiny", tmp_path / "raw")


def test_idx_folder_of_users_own_files_needs_no_checksum(tmp_path, monkeypatch):
    monkeypatch.delenv(datasets.MIRROR_ENV, raising=False)
    folder = write_idx_folder(tmp_path / "mine", 200, 50, gz=False)
    manifest = download("idx_folder", tmp_path / "raw", idx_folder=str(folder))
    assert not any(entry["verified"] for entry in manifest["files"].values())


def test_idx_folder_with_wrong_image_size_is_rejected(tmp_path):
    from mclcore.idx import encode_idx

    folder = write_idx_folder(tmp_path / "mine", 20, 10, gz=False)
    (folder / "train-images-idx3-ubyte").write_bytes(
        encode_idx(np.zeros((20, 32, 32), dtype=np.uint8))
    )
    with pytest.raises(DataError, match="28x28"):
        download("idx_folder", tmp_path / "raw", idx_folder=str(folder))


def test_holdout_is_disjoint_from_training_and_reproducible():
    train, held = datasets.holdout_split(1000, 100, seed=3)
    assert len(set(train) & set(held)) == 0 and len(train) + len(held) == 1000
    assert np.array_equal(held, datasets.holdout_split(1000, 100, seed=3)[1])


def test_holdout_as_large_as_the_training_set_is_an_error():
    with pytest.raises(DataError, match="data.holdout"):
        datasets.holdout_split(100, 100, seed=0)


def _require_shared_fashion():
    if FASHION.is_dir():
        return
    if os.environ.get("MCL_REQUIRE_SHARED_DATA"):
        pytest.fail(f"{FASHION} is missing but MCL_REQUIRE_SHARED_DATA is set")
    pytest.skip(f"no offline Fashion-MNIST at {FASHION}")


def test_real_fashion_mnist_mirror_passes_the_published_checksums(tmp_path, monkeypatch):
    _require_shared_fashion()
    monkeypatch.setenv(datasets.MIRROR_ENV, str(FASHION))
    manifest = download("fashion_mnist", tmp_path / "raw")
    assert all(entry["verified"] for entry in manifest["files"].values())
    splits = load_splits(tmp_path / "raw", holdout=2000, split_seed=0)
    assert len(splits.train_images) == 58_000 and len(splits.test_images) == 10_000
    assert set(np.unique(splits.test_labels)) == set(range(10))
