"""Reading and writing the IDX format of MNIST (LeCun et al., "THE MNIST DATABASE")."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

# Type byte of the IDX magic number -> numpy dtype (big-endian, as IDX stores it).
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IdxFormatError(ValueError):
    """Bytes that are not a well-formed IDX file."""


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file into an array of its shape."""
    if len(data) < 4:
        raise IdxFormatError(f"{name}: {len(data)} bytes is too short for an IDX header")
    zero, type_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise IdxFormatError(
            f"{name}: not an IDX file (magic {data[:4].hex()}); "
            "expected 0000 then a type byte (08 for ubyte) and the number of dimensions"
        )
    header_end = 4 + 4 * ndim
    if len(data) < header_end:
        raise IdxFormatError(f"{name}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header_end])
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape)) * dtype.itemsize
    actual = len(data) - header_end
    if actual != expected:
        raise IdxFormatError(
            f"{name}: IDX header declares shape {shape} ({expected} bytes of data) "
            f"but the file holds {actual}; the file is truncated or corrupt"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_end).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes of an array (the inverse of `parse_idx`)."""
    for type_code, dtype in _IDX_DTYPES.items():
        if np.dtype(array.dtype).kind == dtype.kind and array.dtype.itemsize == dtype.itemsize:
            header = struct.pack(">HBB", 0, type_code, array.ndim)
            header += struct.pack(f">{array.ndim}I", *array.shape)
            return header + np.ascontiguousarray(array, dtype=dtype).tobytes()
    raise IdxFormatError(f"no IDX type for dtype {array.dtype}")


def maybe_decompress(data: bytes) -> bytes:
    """Gunzip `data` if it starts with the gzip magic, else return it unchanged."""
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    return data


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file from disk, gzipped or not."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: IDX file not found; run `dvc repro download` first")
    try:
        data = maybe_decompress(path.read_bytes())
    except (OSError, EOFError) as err:
        raise IdxFormatError(f"{path}: not a valid gzip file ({err})") from err
    return parse_idx(data, str(path))
