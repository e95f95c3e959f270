"""Readers for the digit image formats DigitExampleGen accepts: IDX, Kaggle CSV and PNG folders.

They are plain Python so they can be unit-tested without Beam, and every error names the file and the
record, because a user with 70,000 records needs to know which one is wrong.
"""

import csv
import gzip
import hashlib
import os
from dataclasses import dataclass
from typing import Iterator, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from models import features, preprocessing

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_UBYTE = 0x08
_IDX_IMAGES_DIMS = 3
_IDX_LABELS_DIMS = 1
PNG_SHARD_SIZE = 500
"""PNG files per Beam work item: small enough to spread over workers, large enough to be cheap."""

Digit = Tuple[str, np.ndarray, int]
"""(record id for messages, uint8 pixels of shape 28x28, label)."""


class DigitDataError(ValueError):
    """Input that cannot become a valid digit example; the message names the file and record."""

    def __init__(self, path: str, problem: str, record: str = ""):
        where = f"{path}, {record}" if record else path
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Shard:
    """One unit of reading work: an IDX image/label pair, a CSV file, or a batch of PNG files."""

    kind: str
    paths: Tuple[str, ...]


def _read_bytes(path: str) -> bytes:
    """Whole file contents, gunzipped when the content (not the name) is gzip."""
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise DigitDataError(path, f"corrupt or truncated gzip data ({e})") from e
    return data


def _parse_idx(path: str, expected_dims: int) -> Tuple[Tuple[int, ...], np.ndarray]:
    """Checks an IDX header against the file size and returns (dims, flat uint8 payload)."""
    data = _read_bytes(path)
    if len(data) < 4:
        raise DigitDataError(path, f"too short for an IDX header ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    expected_magic = (_IDX_UBYTE << 8) | expected_dims
    if magic != expected_magic:
        raise DigitDataError(
            path,
            f"wrong IDX magic number 0x{magic:08x}, expected 0x{expected_magic:08x} "
            f"(unsigned bytes, {expected_dims} dimension(s))",
        )
    header_size = 4 + 4 * expected_dims
    if len(data) < header_size:
        raise DigitDataError(path, "truncated IDX header")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(expected_dims))
    expected_size = header_size + int(np.prod(dims))
    if len(data) != expected_size:
        state = "truncated" if len(data) < expected_size else "has trailing bytes"
        raise DigitDataError(
            path,
            f"{state}: header declares {dims} ({expected_size} bytes), file has {len(data)} bytes",
        )
    return dims, np.frombuffer(data, dtype=np.uint8, offset=header_size)


def _check_label(path: str, record: str, label: int) -> int:
    if not 0 <= label < features.NUM_CLASSES:
        raise DigitDataError(path, f"label {label} outside 0-{features.NUM_CLASSES - 1}", record)
    return label


def read_idx(images_path: str, labels_path: str) -> Iterator[Digit]:
    """Yields the digits of one IDX images file and its labels file."""
    image_dims, pixels = _parse_idx(images_path, _IDX_IMAGES_DIMS)
    (num_labels,), labels = _parse_idx(labels_path, _IDX_LABELS_DIMS)
    num_images, rows, cols = image_dims
    if (rows, cols) != (features.IMAGE_SIZE, features.IMAGE_SIZE):
        raise DigitDataError(
            images_path, f"images are {rows}x{cols}, expected {features.IMAGE_SIZE}x{features.IMAGE_SIZE}"
        )
    if num_images != num_labels:
        raise DigitDataError(images_path, f"{num_images} images but {labels_path} has {num_labels} labels")
    images = pixels.reshape(num_images, rows, cols)
    for i in range(num_images):
        record = f"record {i}"
        yield record, images[i], _check_label(labels_path, record, int(labels[i]))


def _csv_int(path: str, record: str, column: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise DigitDataError(path, f"column {column}: {text!r} is not an integer", record) from None


def _csv_pixels(path: str, record: str, names: List[str], cells: List[str]) -> np.ndarray:
    pixels = np.array([_csv_int(path, record, name, v) for name, v in zip(names, cells)], dtype=np.int64)
    bad = np.flatnonzero((pixels < 0) | (pixels > features.MAX_PIXEL))
    if bad.size:
        raise DigitDataError(path, f"column {names[bad[0]]}: pixel {pixels[bad[0]]} outside 0-255", record)
    return pixels.astype(np.uint8).reshape(features.IMAGE_SIZE, features.IMAGE_SIZE)


def _csv_rows(path: str, labelled: bool) -> Iterator[Tuple[str, List[str], List[str]]]:
    """(record, header, cells) of every data row, the header and every row's width checked."""
    width = features.NUM_PIXELS + (1 if labelled else 0)
    expected = (
        f"'{features.LABEL_KEY}' then {features.NUM_PIXELS} pixel columns"
        if labelled
        else (f"{features.NUM_PIXELS} pixel columns")
    )
    with tf.io.gfile.GFile(path, "r") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if header is None:
            raise DigitDataError(path, "empty file, expected a header row")
        if len(header) != width or (header[0] == features.LABEL_KEY) != labelled:
            raise DigitDataError(
                path, f"header has {len(header)} columns starting {header[:1]}, expected {width}: {expected}", "line 1"
            )
        for line_number, row in enumerate(rows, start=2):
            record = f"line {line_number}"
            if len(row) != width:
                raise DigitDataError(path, f"expected {width} columns, found {len(row)}", record)
            yield record, header, row


def read_csv(path: str) -> Iterator[Digit]:
    """Yields the digits of a Kaggle 'Digit Recognizer' CSV: header `label,pixel0..pixel783`."""
    for record, header, row in _csv_rows(path, labelled=True):
        label = _check_label(path, record, _csv_int(path, record, header[0], row[0]))
        yield record, _csv_pixels(path, record, header[1:], row[1:]), label


def read_unlabeled_csv(path: str) -> Iterator[Tuple[int, np.ndarray]]:
    """Yields (ImageId from 1, pixels) of Kaggle's unlabeled test.csv: header `pixel0..pixel783`."""
    for image_id, (record, header, row) in enumerate(_csv_rows(path, labelled=False), start=1):
        yield image_id, _csv_pixels(path, record, header, row)


def png_label(path: str) -> int:
    """The class of a PNG is the name of its folder, `0` to `9`."""
    folder = os.path.basename(os.path.dirname(path))
    if folder not in {str(d) for d in range(features.NUM_CLASSES)}:
        raise DigitDataError(path, f"folder {folder!r} is not a digit class 0-9")
    return int(folder)


def decode_image(data: bytes, path: str = "<bytes>") -> np.ndarray:
    """Decodes a picture file's bytes into MNIST-framed uint8 pixels, with the model's own decoder."""
    try:
        pixels, found = preprocessing.decode_image(tf.constant(data))
    except tf.errors.InvalidArgumentError as e:
        raise DigitDataError(path, f"unreadable image ({e.message.splitlines()[0]})") from None
    if not found:
        raise DigitDataError(path, "no digit found (a blank or nearly blank picture)")
    return pixels.numpy().astype(np.uint8)


def read_pngs(paths: Sequence[str]) -> Iterator[Digit]:
    """Yields the digits of PNG files stored one folder per class."""
    for path in paths:
        label = png_label(path)
        with tf.io.gfile.GFile(path, "rb") as f:
            data = f.read()
        yield os.path.basename(path), decode_image(data, path), label


def _idx_partner(images_path: str) -> str:
    head, name = os.path.split(images_path)
    return os.path.join(head, name.replace("images", "labels").replace("idx3", "idx1"))


def plan_shards(paths: Sequence[str]) -> List[Shard]:
    """Groups the files matched for one split into reading work items, by file type.

    IDX images files are paired with their labels files by name (`*-images-idx3-*` with
    `*-labels-idx1-*`), as in MNIST, Fashion-MNIST and EMNIST.
    """
    paths = sorted(paths)
    shards: List[Shard] = []
    pngs = [p for p in paths if p.lower().endswith(".png")]
    csvs = [p for p in paths if p.lower().endswith(".csv")]
    others = [p for p in paths if p not in pngs and p not in csvs]
    images = [p for p in others if "images" in os.path.basename(p)]
    for path in images:
        partner = _idx_partner(path)
        if partner not in others:
            raise DigitDataError(path, f"IDX images file without its labels file {partner}")
        shards.append(Shard("idx", (path, partner)))
    paired = {p for s in shards for p in s.paths}
    stray = [p for p in others if p not in paired]
    if stray:
        raise DigitDataError(stray[0], "not a recognised digit file (IDX images/labels pair, .csv or .png)")
    shards += [Shard("csv", (p,)) for p in csvs]
    shards += [Shard("png", tuple(pngs[i : i + PNG_SHARD_SIZE])) for i in range(0, len(pngs), PNG_SHARD_SIZE)]
    return shards


def read_shard(shard: Shard) -> Iterator[Digit]:
    """Yields every digit of one work item."""
    if shard.kind == "idx":
        return read_idx(*shard.paths)
    if shard.kind == "csv":
        return read_csv(shard.paths[0])
    return read_pngs(shard.paths)


CHECKSUMS_FILE = "SHA256SUMS"


def verify_checksums(folder: str) -> int:
    """Checks every file listed in `<folder>/SHA256SUMS` (if the dataset ships one); returns the count.

    A corrupted or swapped download then fails here, by name, instead of training a model on it.
    """
    listing = os.path.join(folder, CHECKSUMS_FILE)
    if not tf.io.gfile.exists(listing):
        return 0
    with tf.io.gfile.GFile(listing, "r") as f:
        entries = [line.split() for line in f if line.strip()]
    for line_number, entry in enumerate(entries, start=1):
        if len(entry) != 2:
            raise DigitDataError(listing, "expected '<sha256>  <file name>'", f"line {line_number}")
        expected, name = entry[0].lower(), entry[1].lstrip("*")
        path = os.path.join(folder, name)
        if not tf.io.gfile.exists(path):
            raise DigitDataError(path, f"listed in {CHECKSUMS_FILE} but missing")
        digest = hashlib.sha256()
        with tf.io.gfile.GFile(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != expected:
            raise DigitDataError(path, f"SHA-256 {digest.hexdigest()} does not match {CHECKSUMS_FILE} ({expected})")
    return len(entries)


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: magic 0x0000080N, N big-endian dimensions, then the data."""
    header = bytes([0, 0, _IDX_UBYTE, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()
