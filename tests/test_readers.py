"""Unit tests of the IDX, CSV and PNG readers: valid files, and each kind of bad file."""

import os

import numpy as np
import pytest
from PIL import Image

from components.digit_example_gen import readers
from components.digit_example_gen.readers import DigitDataError
from tests import support


def _read_all(shard_paths):
    return [d for s in readers.plan_shards(shard_paths) for d in readers.read_shard(s)]


@pytest.mark.parametrize("gz", [True, False])
def test_idx_roundtrip(tmp_path, gz):
    images, labels = support.random_digits(25)
    paths = support.write_idx(str(tmp_path), "train", images, labels, gz=gz)
    digits = _read_all(paths)
    assert len(digits) == 25
    np.testing.assert_array_equal(np.stack([d[1] for d in digits]), images)
    assert [d[2] for d in digits] == labels.tolist()


def _idx_error(tmp_path, images_bytes, labels_bytes, match):
    img = support.write(str(tmp_path / "x-images-idx3-ubyte"), images_bytes)
    lbl = support.write(str(tmp_path / "x-labels-idx1-ubyte"), labels_bytes)
    with pytest.raises(DigitDataError, match=match):
        list(readers.read_idx(img, lbl))


def test_idx_wrong_magic(tmp_path):
    images, labels = support.random_digits(3)
    bad = b"\x00\x00\x0d\x03" + readers.idx_bytes(images)[4:]
    _idx_error(tmp_path, bad, readers.idx_bytes(labels), r"x-images-idx3-ubyte: wrong IDX magic number 0x00000d03")


def test_idx_labels_file_given_as_images(tmp_path):
    _, labels = support.random_digits(3)
    lb = readers.idx_bytes(labels)
    _idx_error(tmp_path, lb, lb, "wrong IDX magic number 0x00000801, expected 0x00000803")


def test_idx_truncated(tmp_path):
    images, labels = support.random_digits(3)
    _idx_error(tmp_path, readers.idx_bytes(images)[:-10], readers.idx_bytes(labels), "truncated")


def test_idx_truncated_gzip(tmp_path):
    images, labels = support.random_digits(30)
    full = str(tmp_path / "full.gz")
    support.write(full, readers.idx_bytes(images), gz=True)
    with open(full, "rb") as f:
        cut = f.read()[:-200]
    _idx_error(tmp_path, cut, readers.idx_bytes(labels), "corrupt or truncated gzip")


def test_idx_count_mismatch(tmp_path):
    images, labels = support.random_digits(4)
    _idx_error(tmp_path, readers.idx_bytes(images), readers.idx_bytes(labels[:3]), "4 images but .* 3 labels")


def test_idx_not_28x28(tmp_path):
    images = np.zeros((2, 32, 32), np.uint8)
    _idx_error(tmp_path, readers.idx_bytes(images), readers.idx_bytes(np.zeros(2, np.uint8)), "32x32, expected 28x28")


def test_idx_label_out_of_range_names_record(tmp_path):
    images, labels = support.random_digits(5)
    labels[3] = 11
    _idx_error(
        tmp_path,
        readers.idx_bytes(images),
        readers.idx_bytes(labels),
        "x-labels-idx1-ubyte, record 3: label 11 outside 0-9",
    )


def test_idx_images_without_labels(tmp_path):
    images, _ = support.random_digits(2)
    path = support.write(str(tmp_path / "train-images-idx3-ubyte"), readers.idx_bytes(images))
    with pytest.raises(DigitDataError, match="without its labels file"):
        readers.plan_shards([path])


def test_csv_roundtrip(tmp_path):
    images, labels = support.random_digits(7)
    path = support.write_csv(str(tmp_path / "train.csv"), images, labels)
    digits = _read_all([path])
    np.testing.assert_array_equal(np.stack([d[1] for d in digits]), images)
    assert [d[2] for d in digits] == labels.tolist()


def _csv_with(tmp_path, line: str):
    images, labels = support.random_digits(2)
    path = support.write_csv(str(tmp_path / "train.csv"), images, labels)
    with open(path, "a") as f:
        f.write(line + "\n")
    return path


@pytest.mark.parametrize(
    "line, match",
    [
        ("3," + ",".join(["0"] * 783), r"train.csv, line 4: expected 785 columns, found 784"),
        ("12," + ",".join(["0"] * 784), r"line 4: label 12 outside 0-9"),
        ("1," + ",".join(["0"] * 783 + ["256"]), r"line 4: column pixel783: pixel 256 outside 0-255"),
        ("1,x" + ",0" * 783, r"line 4: column pixel0: 'x' is not an integer"),
    ],
)
def test_csv_bad_rows(tmp_path, line, match):
    with pytest.raises(DigitDataError, match=match):
        list(readers.read_csv(_csv_with(tmp_path, line)))


def test_csv_bad_header(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text(",".join(f"pixel{i}" for i in range(784)) + "\n")
    with pytest.raises(DigitDataError, match="line 1: header has 784 columns"):
        list(readers.read_csv(str(path)))


def _blob(value: int = 255) -> np.ndarray:
    image = np.zeros((28, 28), np.uint8)
    image[8:20, 10:18] = value
    return image


def test_png_of_mnist_digits_come_back_as_they_were(tmp_path):
    """MNIST digits saved as PNGs are already framed as MNIST frames digits: reading them changes
    next to nothing (framing is the model's own, models.preprocessing)."""
    images = support.mnist_digits("t10k", 20)[0]
    paths = support.write_pngs(str(tmp_path), images, list(range(10)) * 2)
    digits = {int(name.split(".")[0]): (pixels, label) for name, pixels, label in _read_all(paths)}
    read = np.stack([digits[i][0] for i in range(len(images))]).astype(float)
    assert np.abs(read - images).mean() < 0.5
    assert [digits[i][1] for i in range(len(images))] == list(range(10)) * 2


def test_a_blank_png_is_refused_by_name(tmp_path):
    (path,) = support.write_pngs(str(tmp_path), np.zeros((1, 28, 28), np.uint8), [4])
    with pytest.raises(DigitDataError, match=r"4/00000.png: no digit found"):
        _read_all([path])


def test_png_colour_any_size_dark_on_light_is_converted(tmp_path):
    big = Image.fromarray(255 - _blob()).resize((112, 112), Image.NEAREST).convert("RGB")
    path = tmp_path / "5" / "big.png"
    path.parent.mkdir()
    big.save(path)
    ((_, pixels, label),) = _read_all([str(path)])
    assert pixels.shape == (28, 28) and label == 5
    # Inverted to MNIST polarity (digit bright, background dark), and framed as MNIST frames digits.
    assert pixels[14, 14] > 200 and pixels[0, 0] < 30
    rows, cols = np.flatnonzero(pixels.any(axis=1)), np.flatnonzero(pixels.any(axis=0))
    assert rows[-1] - rows[0] + 1 == 20 and cols[-1] - cols[0] + 1 <= 20


def test_png_unreadable(tmp_path):
    path = tmp_path / "4" / "broken.png"
    path.parent.mkdir()
    path.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DigitDataError, match=r"4/broken.png: unreadable image"):
        _read_all([str(path)])


def test_png_folder_not_a_digit(tmp_path):
    path = tmp_path / "cats" / "a.png"
    path.parent.mkdir()
    Image.fromarray(_blob()).save(path)
    with pytest.raises(DigitDataError, match="folder 'cats' is not a digit class"):
        _read_all([str(path)])


def test_png_shards_spread_work(tmp_path):
    n = readers.PNG_SHARD_SIZE + 3
    paths = [os.path.join(str(tmp_path), "1", f"{i}.png") for i in range(n)]
    shards = readers.plan_shards(paths)
    assert [len(s.paths) for s in shards] == [readers.PNG_SHARD_SIZE, 3]


def test_unknown_file_is_rejected(tmp_path):
    with pytest.raises(DigitDataError, match="notes.txt: not a recognised digit file"):
        readers.plan_shards([str(tmp_path / "notes.txt")])
