"""What several test modules share: small digit datasets in every input format (good and bad), the
bundled MNIST's first digits, HTTP helpers, and the browser."""

import csv
import glob
import gzip
import itertools
import json
import os
import shutil
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from components import examples
from components.digit_example_gen import readers
from components.digit_example_gen.readers import idx_bytes
from models import features
from models.config import TrainerConfig
from pipeline import configs
from reports.browser import CHROMIUM
from serving.config import ServerOptions, single_model
from serving.model_store import publish_version
from serving.server import ModelServer


def random_digits(count: int, seed: int = 0):
    """`count` random 28x28 uint8 images and labels cycling through 0-9."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    labels = np.arange(count, dtype=np.uint8) % 10
    return images, labels


def write(path: str, data: bytes, gz: bool = False) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with gzip.open(path, "wb") if gz else open(path, "wb") as f:
        f.write(data)
    return path


def write_idx(folder: str, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool = True):
    """Writes `<prefix>-images-idx3-ubyte[.gz]` and `<prefix>-labels-idx1-ubyte[.gz]`."""
    ext = ".gz" if gz else ""
    return (
        write(os.path.join(folder, f"{prefix}-images-idx3-ubyte{ext}"), idx_bytes(images), gz),
        write(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{ext}"), idx_bytes(labels), gz),
    )


def write_csv(path: str, images: np.ndarray, labels: Sequence[int]) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["label"] + [f"pixel{i}" for i in range(784)])
        for image, label in zip(images, labels):
            out.writerow([int(label)] + image.reshape(-1).tolist())
    return path


def write_unlabeled_csv(path: str, images: np.ndarray) -> str:
    """Kaggle's test.csv: a `pixel0..pixel783` header, then one row of pixels per digit."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow([f"pixel{i}" for i in range(784)])
        out.writerows(image.reshape(-1).tolist() for image in images)
    return path


def write_pngs(folder: str, images: np.ndarray, labels: Sequence[int]) -> list:
    paths = []
    for i, (image, label) in enumerate(zip(images, labels)):
        path = os.path.join(folder, str(int(label)), f"{i:05d}.png")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def png_bytes(pixels: np.ndarray) -> bytes:
    """A 28x28 uint8-range array as PNG file bytes."""
    return tf.io.encode_png(tf.constant(np.asarray(pixels).astype(np.uint8)[..., None])).numpy()


def pipeline_test_digits(
    output_root: str, count: int, name: str = configs.PIPELINE_NAME
) -> Tuple[List[bytes], np.ndarray, np.ndarray]:
    """The first `count` test-split examples a pipeline run ingested: serialized, pixels (n, 28, 28), labels."""
    root = configs.pipeline_root(output_root, name)
    digits = examples.first_digits(
        glob.glob(os.path.join(root, "DigitExampleGen", "examples", "*", "Split-test", "*.gz")), count
    )
    return digits.records, digits.pixels, digits.labels


def trainer_job(run: Any, folder: Any, config: TrainerConfig, base_model: Optional[str] = None) -> str:
    """A job file for `tests.trainer_worker` (TFX's Trainer executor) on a pipeline run's Transform
    outputs (an execution's outputs share its id) and the curated schema, writing under `folder`."""
    graph = run.transform_graph_uri
    schema = folder / "schema"
    schema.mkdir(parents=True)
    shutil.copy(configs.SCHEMA_PATH, schema / "schema.pbtxt")
    job = {
        "base_model": base_model,
        "transformed_examples": graph.replace("transform_graph", "transformed_examples"),
        "transform_graph": graph,
        "schema": str(schema),
        "model": str(folder / "model"),
        "model_run": str(folder / "model_run"),
        "custom_config": config.as_custom_config(),
    }
    (folder / "job.json").write_text(json.dumps(job))
    return str(folder / "job.json")


def mnist_digits(prefix: str, count: int) -> Tuple[np.ndarray, np.ndarray]:
    """The first `count` digits of the bundled MNIST file pair `prefix` (train, t10k): uint8 [n, 28, 28]
    and labels uint8, as the smoke profile ingests them."""
    folder = configs.DATA_ROOT
    digits = itertools.islice(
        readers.read_idx(f"{folder}/{prefix}-images-idx3-ubyte.gz", f"{folder}/{prefix}-labels-idx1-ubyte.gz"), count
    )
    pairs = [(pixels, label) for _, pixels, label in digits]
    return np.stack([p for p, _ in pairs]), np.array([label for _, label in pairs], np.uint8)


def write_small_mnist(folder: str, train: int, test: int) -> str:
    """The first digits of the bundled MNIST as a small IDX dataset."""
    write_idx(folder, "train", *mnist_digits("train", train))
    write_idx(folder, "t10k", *mnist_digits("t10k", test))
    return folder


def http(
    url: str,
    body: Any = None,
    raw: Optional[bytes] = None,
    headers: Optional[Dict[str, str]] = None,
    method: Optional[str] = None,
) -> Tuple[int, Any]:
    """(status, JSON answer) of one request; errors are answers too."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(
        url, data=data, headers=headers or {"Content-Type": "application/json"}, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_for(condition: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "condition not met in time"
        time.sleep(0.05)


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium: `make browser` (root) installs it"
)


def executions(output_root: str, run_id: Optional[str] = None) -> List[Tuple[str, int, int]]:
    """(component type, state, id) of every execution in a run's ML Metadata (of one run, if named)."""
    import ml_metadata as mlmd
    from tfx import v1 as tfx

    store = mlmd.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(configs.metadata_path(output_root))
    )
    types = {t.id: t.name.rsplit(".", 1)[-1] for t in store.get_execution_types()}
    if run_id is None:
        found = store.get_executions()
    else:
        (context,) = [c for c in store.get_contexts_by_type("pipeline_run") if c.name == run_id]
        found = store.get_executions_by_context(context.id)
    return [(types[e.type_id], e.last_known_state, e.id) for e in found]


@contextmanager
def rest_server(model_dir: str, folder: str, feedback_dir: Optional[str] = None) -> Iterator[ModelServer]:
    """`model_dir` served as version 1 of the digits model from `folder`, REST only, on a free port
    (keeping the drawing page's labelled digits in `feedback_dir`, if given)."""
    base = os.path.join(folder, features.MODEL_NAME)
    publish_version(model_dir, base, 1)
    server = ModelServer(
        ServerOptions(
            models=single_model(features.MODEL_NAME, base), rest_api_port=0, port=None, feedback_dir=feedback_dir
        )
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
