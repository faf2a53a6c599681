import gzip

import numpy as np
import pytest

from mclcore.idx import IdxFormatError, encode_idx, parse_idx, read_idx


def test_encode_then_parse_returns_the_same_array():
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    parsed = parse_idx(encode_idx(images))
    assert parsed.dtype == np.uint8 and parsed.shape == (5, 28, 28)
    assert np.array_equal(parsed, images)


def test_mnist_header_layout_is_read_as_published():
    # The MNIST paper's layout: magic 0x00000803, then the three dimensions, big-endian.
    data = bytes.fromhex("00000803" "00000002" "00000001" "00000003") + bytes([1, 2, 3, 4, 5, 6])
    assert parse_idx(data).tolist() == [[[1, 2, 3]], [[4, 5, 6]]]


def test_truncated_file_is_an_error_naming_the_file():
    data = encode_idx(np.zeros((4, 28, 28), dtype=np.uint8))[:-10]
    with pytest.raises(IdxFormatError, match="labels.idx.*truncated"):
        parse_idx(data, "labels.idx")


def test_wrong_magic_is_an_error():
    with pytest.raises(IdxFormatError, match="not an IDX file"):
        parse_idx(b"PK\x03\x04" + bytes(100), "archive.zip")


def test_gzipped_and_plain_files_read_alike(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    (tmp_path / "a").write_bytes(encode_idx(labels))
    (tmp_path / "b.gz").write_bytes(gzip.compress(encode_idx(labels)))
    assert np.array_equal(read_idx(tmp_path / "a"), read_idx(tmp_path / "b.gz"))


def test_broken_gzip_is_an_error(tmp_path):
    good = gzip.compress(encode_idx(np.zeros((100, 28, 28), dtype=np.uint8)))
    (tmp_path / "x.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(IdxFormatError, match="x.gz"):
        read_idx(tmp_path / "x.gz")
