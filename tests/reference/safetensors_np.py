"""safetensors read/write in plain numpy, independent of the `safetensors` package and of the
engine's C++ reader (so the parity suite does not share a loader bug with the engine).

Format: u64 little-endian header length N, N bytes of JSON {name: {"dtype", "shape",
"data_offsets": [begin, end]}, "__metadata__": {...}}, then the data (offsets relative to it).
Floats come back as float32: bf16 is widened exactly (its 16 bits are the top half of an f32).
Tests: tests/python/test_reference_selfcheck.py (round trip of every dtype, bf16 bit patterns).
"""

import json
import struct

import numpy as np

_DTYPES = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # raw bits; widened in get()
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("u1"),
}


def bf16_bits_to_f32(bits):
    """uint16 bf16 bit patterns → float32 (exact)."""
    bits = np.asarray(bits, dtype=np.uint16)
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def f32_to_bf16_bits(x):
    """float32 → uint16 bf16 bits, rounded to nearest even (NaN kept quiet)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    nan = np.isnan(np.asarray(x, dtype=np.float32))
    out = rounded.astype(np.uint16)
    out[nan] = 0x7FC0
    return out


class SafetensorsFile:
    """Lazy reader: the header is parsed at open, tensors are read (memory-mapped) on get()."""

    def __init__(self, path):
        self.path = str(path)
        with open(self.path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise ValueError(f"{self.path}: not a safetensors file (shorter than 8 bytes)")
            (n,) = struct.unpack("<Q", head)
            f.seek(0, 2)
            size = f.tell()
            if n > size - 8:
                raise ValueError(f"{self.path}: header length {n} exceeds the file ({size} bytes)")
            f.seek(8)
            header = json.loads(f.read(n).decode("utf-8"))
        self.metadata = header.pop("__metadata__", {}) or {}
        self._data_start = 8 + n
        data_len = size - self._data_start
        self._entries = {}
        for name, e in header.items():
            dt = e["dtype"]
            if dt not in _DTYPES:
                raise ValueError(f"{self.path}: tensor '{name}': unsupported dtype {dt}")
            shape = tuple(int(s) for s in e["shape"])
            begin, end = (int(o) for o in e["data_offsets"])
            count = int(np.prod(shape, dtype=np.int64)) if shape else 1
            if not (0 <= begin <= end <= data_len) or end - begin != count * _DTYPES[dt].itemsize:
                raise ValueError(f"{self.path}: tensor '{name}': offsets [{begin}, {end}) do not fit "
                                 f"shape {shape} of {dt} in {data_len} data bytes")
            self._entries[name] = (dt, shape, begin, end)
        self._mm = None

    def keys(self):
        return list(self._entries)

    def __contains__(self, name):
        return name in self._entries

    def shape(self, name):
        return self._entries[name][1]

    def dtype(self, name):
        return self._entries[name][0]

    def raw(self, name):
        """The stored array (bf16 as uint16 bits), a read-only view of the mapped file."""
        if name not in self._entries:
            raise KeyError(f"{self.path}: no tensor '{name}'")
        if self._mm is None:
            self._mm = np.memmap(self.path, dtype=np.uint8, mode="r")
        dt, shape, begin, end = self._entries[name]
        buf = self._mm[self._data_start + begin:self._data_start + end]
        return buf.view(_DTYPES[dt]).reshape(shape)

    def get(self, name):
        """The tensor as a new array; floating types (bf16, f16, f32, f64) as float32."""
        dt = self._entries[name][0] if name in self._entries else None
        a = self.raw(name)
        if dt == "BF16":
            return bf16_bits_to_f32(a)
        if dt in ("F16", "F32", "F64"):
            return a.astype(np.float32)
        return np.array(a)


_NP_TO_ST = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("float64"): "F64",
             np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("uint8"): "U8"}


def write_safetensors(path, tensors, dtypes=None, metadata=None):
    """Writes {name: float array}. dtypes: {name: "BF16"|"F16"|"F32"} (default "F32")."""
    dtypes = dtypes or {}
    header, blobs, offset = {}, [], 0
    for name, arr in tensors.items():
        arr = np.asarray(arr)
        dt = dtypes.get(name) or _NP_TO_ST.get(arr.dtype, "F32")
        if dt == "BF16":
            data = f32_to_bf16_bits(arr.astype(np.float32)).astype("<u2").tobytes()
        else:
            data = np.ascontiguousarray(arr, dtype=_DTYPES[dt]).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)  # keep the data 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
