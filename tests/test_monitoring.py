"""`monitoring`: picture features, skew and drift by TFDV's comparators on the curated traffic schema
(synthetic shifts found, clean test digits not), request logs read back, and the monitor's verdict."""

import numpy as np
import pytest
import tensorflow as tf

from models import features
from monitoring import drift, pictures, shifts, traffic
from monitoring.config import TRAFFIC_SCHEMA_PATH, MonitorSettings
from monitoring.monitor import watch
from serving.config import RequestLogging, ServerOptions
from serving.request_log import CLASSIFY, PREDICT, Entry, RequestLogger
from tests import support

CLEAN_WINDOWS = 40
WINDOW = 200


@pytest.fixture(scope="module")
def schema():
    return drift.read_schema(TRAFFIC_SCHEMA_PATH)


def _answers(labels: np.ndarray, seed: int) -> np.ndarray:
    """Probabilities as a good model gives them: most on the true class, confidence varying."""
    rng = np.random.default_rng(seed)
    confidence = rng.uniform(0.8, 1.0, size=len(labels))
    probabilities = np.tile(((1 - confidence) / (features.NUM_CLASSES - 1))[:, None], (1, features.NUM_CLASSES))
    probabilities[np.arange(len(labels)), labels] = confidence
    return probabilities.astype(np.float32)


@pytest.fixture(scope="module")
def training(schema):
    pixels, labels = support.mnist_digits("train", 3000)
    return drift.statistics(pictures.picture_features(pixels, _answers(labels, 0)), schema)


@pytest.fixture(scope="module")
def test_digits():
    return support.mnist_digits("t10k", 4000)


def test_features_read_a_known_picture():
    picture = np.zeros((1, 28, 28), np.float32)
    picture[0, 4:10, 10:14] = 255  # 6 rows by 4 columns of ink
    values = pictures.picture_features(picture, np.eye(10, dtype=np.float32)[[3]] * 0.9)
    assert values[pictures.INK_MASS][0] == 24
    assert (values[pictures.BOX_HEIGHT][0], values[pictures.BOX_WIDTH][0]) == (6, 4)
    assert (values[pictures.CENTRE_ROW][0], values[pictures.CENTRE_COLUMN][0]) == (6.5, 11.5)
    assert values[pictures.STROKE_THICKNESS][0] == pytest.approx(2 * 24 / 16)  # 16 of 24 pixels on the edge
    assert values[pictures.INK_INTENSITY][0] == 1.0
    assert (values[pictures.PREDICTED_CLASS][0], values[pictures.CONFIDENCE][0]) == (3, pytest.approx(0.9))
    blank = pictures.picture_features(np.zeros((1, 28, 28)))
    assert blank[pictures.BOX_HEIGHT][0] == 0 and blank[pictures.INK_INTENSITY][0] == 0
    assert set(pictures.DESCRIPTIONS) == set(values)


def test_clean_test_digits_raise_no_alarm(schema, training, test_digits):
    """Windows of clean test digits against training digits: the false-alarm rate the thresholds give."""
    pixels, labels = test_digits
    rng = np.random.default_rng(1)
    alarms = []
    for i in range(CLEAN_WINDOWS):
        chosen = rng.choice(len(labels), WINDOW, replace=False)
        window = drift.statistics(pictures.picture_features(pixels[chosen], _answers(labels[chosen], i + 1)), schema)
        alarms.append(drift.compare(window, training, schema).drifted)
    assert alarms == [[]] * CLEAN_WINDOWS


@pytest.mark.parametrize(
    "shift, expected",
    [
        ("small and off-centre", {pictures.CENTRE_ROW, pictures.CENTRE_COLUMN, pictures.BOX_HEIGHT}),
        ("thick strokes", {pictures.STROKE_THICKNESS, pictures.INK_MASS}),
        ("inverted", {pictures.INK_MASS, pictures.BOX_HEIGHT}),
        ("noisy", {pictures.INK_MASS, pictures.BOX_WIDTH}),
    ],
)
def test_shifted_traffic_is_found_by_the_features_it_moves(schema, training, test_digits, shift, expected):
    pixels, labels = test_digits
    rng = np.random.default_rng(2)
    shifted = shifts.SHIFTS[shift](pixels[:WINDOW].astype(np.float32), rng)
    window = drift.statistics(pictures.picture_features(shifted, _answers(labels[:WINDOW], 9)), schema)
    comparison = drift.compare(window, training, schema)
    assert expected <= set(comparison.drifted)
    assert set(comparison.anomalies.anomaly_info) == set(comparison.drifted)
    assert all(m.kind == drift.SKEW for m in comparison.measurements)


def test_drift_compares_a_window_with_the_one_before(schema, training, test_digits):
    pixels, labels = test_digits
    before = drift.statistics(pictures.picture_features(pixels[:WINDOW], _answers(labels[:WINDOW], 3)), schema)
    thick = shifts.thick(pixels[WINDOW : 2 * WINDOW], np.random.default_rng(0))
    now = drift.statistics(pictures.picture_features(thick, _answers(labels[WINDOW : 2 * WINDOW], 4)), schema)
    comparison = drift.compare(now, training, schema, previous=before)
    moved = {(m.feature, m.kind) for m in comparison.measurements if m.over}
    assert (pictures.STROKE_THICKNESS, drift.DRIFT) in moved and (pictures.STROKE_THICKNESS, drift.SKEW) in moved


def _log(prefix: str, entries) -> None:
    logger = RequestLogger(ServerOptions(request_log_file_bytes=200_000), lambda name: None)
    for entry in entries:
        logger.add(entry)
    logger.stop()


def test_traffic_is_read_back_from_every_kind_of_logged_request(tmp_path, test_digits):
    pixels, labels = test_digits
    prefix = str(tmp_path / "logs" / "digits")
    config = RequestLogging(prefix, 1.0)
    probabilities = _answers(labels[:6], 5)
    example = tf.train.Example()
    example.features.feature[features.IMAGE_KEY].int64_list.value.extend(pixels[4].reshape(-1).tolist())
    blank = np.zeros((1, features.NUM_CLASSES), np.float32)
    _log(
        prefix,
        [
            Entry(
                PREDICT,
                "digits",
                1,
                "predict_images",
                config,
                {"images": pixels[:2].astype(np.float32)},
                {"probabilities": probabilities[:2]},
            ),
            Entry(
                PREDICT,
                "digits",
                2,
                "predict_image_bytes",
                config,
                {"image_bytes": np.array([b"png", b"blank"])},
                {
                    "framed": np.stack([pixels[2], np.zeros((28, 28))]).astype(np.float32),
                    "probabilities": np.concatenate([probabilities[2:3], blank]),
                },
            ),
            Entry(
                PREDICT,
                "digits",
                2,
                "serving_default",
                config,
                {"examples": np.array([example.SerializeToString()], dtype=object)},
                {"probabilities": probabilities[4:5]},
            ),
            Entry(
                CLASSIFY,
                "digits",
                2,
                "classification",
                config,
                [example.SerializeToString()],
                {"classes": np.array([[str(c).encode() for c in range(10)]]), "scores": probabilities[5:6]},
            ),
        ],
    )
    served = traffic.read_traffic(prefix)
    assert len(served) == 5 and served.blank == 1
    np.testing.assert_array_equal(served.pixels, np.stack([pixels[0], pixels[1], pixels[2], pixels[4], pixels[4]]))
    np.testing.assert_allclose(served.probabilities, probabilities[[0, 1, 2, 4, 5]])
    assert served.versions.tolist() == [1, 1, 2, 2, 2]
    assert traffic.read_traffic(prefix, limit=2).versions.tolist() == [2, 2]
    assert traffic.read_traffic(str(tmp_path / "nothing")).pixels.shape == (0, 28, 28)


def test_the_verdict_needs_enough_requests_and_counts_corrections(schema, test_digits):
    pixels, labels = test_digits
    training = pictures.picture_features(pixels[2000:3000], _answers(labels[2000:3000], 6))

    def served(count: int, shift=None) -> traffic.Traffic:
        chosen = pixels[:count].astype(np.float32)
        chosen = shift(chosen, np.random.default_rng(0)) if shift else chosen
        return traffic.Traffic(chosen, _answers(labels[:count], 7), np.ones(count, np.int64), np.zeros(count))

    settings = MonitorSettings(window=300, min_requests=200, retrain_digits=50)
    quiet = watch(served(50), training, schema, settings, new_digits=10)
    assert quiet.comparison is None and not quiet.retrain
    clean = watch(served(600), training, schema, settings, new_digits=10)
    assert len(clean.window) == 300 and clean.comparison is not None and not clean.retrain
    assert {m.kind for m in clean.comparison.measurements} == {drift.SKEW, drift.DRIFT}
    corrections = watch(served(600), training, schema, settings, new_digits=50)
    assert corrections.reasons == ["50 labelled corrections are waiting (from 50 on)"]
    inverted = watch(served(300, shifts.inverted), training, schema, settings)
    assert inverted.retrain and "ink_mass skew" in inverted.reasons[0]
