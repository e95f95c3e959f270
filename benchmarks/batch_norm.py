"""Batch norm's statistics measured again on clean training digits after training: a run's CNN on
`eval` and `test`, clean and perturbed, as trained and with the new statistics.

    .venv/bin/python -m benchmarks.batch_norm [--output output] [--train-digits 20000]

Keras keeps each batch-norm layer's moving mean and variance from the training batches: augmented
pictures (moved, grainy) passed through dropout. A served model sees neither. Here each layer, in
order, gets the mean and variance of what it receives in inference (dropout off) from the first
`--train-digits` clean `train` digits, and the CNN (float32, the weights the Trainer exported) is scored both
ways with the robustness perturbations (`models.robustness`). `eval` is where such a step would be
chosen; `test` is what is reported.
"""

import argparse
from typing import Dict, List, Optional

import numpy as np

from benchmarks import host, mnist, runs
from models import features, robustness
from reports.run_report import read_split

BATCH = 1000


def _scores(net, digits) -> Dict[str, float]:
    def accuracy(pixels: np.ndarray) -> float:
        predicted = net.predict(mnist.scaled(pixels.astype(np.float32)), batch_size=BATCH, verbose=0).argmax(axis=1)
        return round(float((predicted == digits.labels).mean()), 4)

    perturbed = {kind: accuracy(robustness.perturbed(digits.pixels, kind)) for kind in robustness.PERTURBATIONS}
    return {"clean": accuracy(digits.pixels), **perturbed}


def refresh_statistics(net, pixels: np.ndarray) -> None:
    """Sets every batch-norm layer's moving mean and variance, first layer first, to those of its
    inputs on `pixels` in inference (dropout off, earlier layers already refreshed)."""
    import tf_keras as keras

    images = mnist.scaled(pixels.astype(np.float32))
    for layer in net.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        feeding = keras.Model(net.input, layer.input)
        channels = layer.moving_mean.shape[0]
        total, squares, count = np.zeros(channels), np.zeros(channels), 0
        for start in range(0, len(images), BATCH):
            inputs = feeding(images[start : start + BATCH], training=False).numpy().astype(np.float64)
            flat = inputs.reshape(-1, channels)
            total, squares, count = total + flat.sum(axis=0), squares + (flat**2).sum(axis=0), count + len(flat)
        mean = total / count
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign((squares / count - mean**2).astype(np.float32))


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    runs.add_output_flag(parser)
    parser.add_argument("--train-digits", type=int, default=20_000, help="clean `train` digits to measure on")
    args = parser.parse_args(argv)
    run = runs.evaluated_run(args.output)
    from models.model import trained_model

    splits = runs.eval_and_test(run)
    net = trained_model(run.trainer_logs)
    as_trained = {split: _scores(net, digits) for split, digits in splits.items()}
    refresh_statistics(net, read_split(run.examples_uri, features.TRAIN_SPLIT, args.train_digits).pixels)
    return host.reported(
        {
            "run": run.run_id,
            "export_test_accuracy": run.accuracy,
            "export_cnn_test_accuracy": runs.exported_cnn_accuracy(run, splits[features.TEST_SPLIT]),
            "train_digits": args.train_digits,
            "as_trained": as_trained,
            "refreshed": {split: _scores(net, digits) for split, digits in splits.items()},
        }
    )


if __name__ == "__main__":
    main()
