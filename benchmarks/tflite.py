"""TFLite export of a run's model: size, and accuracy on the 10,000 MNIST test digits, per conversion.

    .venv/bin/python -m benchmarks.tflite [--output output] [--save-dir DIR]

Takes the newest evaluated run under `--output` (from its ML Metadata), rebuilds the CNN in float32
with the weights the Trainer exported (and the Pusher pushed) and converts it four
ways: float32; float16 weights; int8 weights (dynamic range); int8 weights and activations, calibrated
on 500 training digits. Each is scored with the TFLite
interpreter on the test digits, next to the pushed SavedModel scored through `predict_images` (which
may read each digit turned, `test_time_rotation`) and to the CNN it saved, reading each digit once as
the conversions do. The TFLite models take what Transform makes of a digit: [n, 28, 28, 1] floats in [0, 1].
"""

import argparse
import json
import os
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from benchmarks import host, mnist, runs
from models.model import trained_model
from reports.run_report import Digits, predict

CONVERSIONS = ("float32", "float16", "int8-dynamic-range", "int8-calibrated")
CHUNK = 1000
CALIBRATION_DIGITS = 500
"""Training digits (never test digits) that int8-calibrated quantization measures activation ranges on."""


def convert(model: tf.keras.Model, conversion: str) -> bytes:
    """The model as a TFLite flatbuffer; tf.keras is tf_keras here (TF_USE_LEGACY_KERAS)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if conversion != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # alone: int8 weights, float activations
    if conversion == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if conversion == "int8-calibrated":  # int8 activations too, their ranges measured on training digits
        calibration = mnist.scaled(mnist.load(mnist.TRAIN, CALIBRATION_DIGITS)[0])
        converter.representative_dataset = lambda: ([calibration[i : i + 1]] for i in range(len(calibration)))
    return converter.convert()


def tflite_predictions(flatbuffer: bytes, images: np.ndarray) -> np.ndarray:
    interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    source, target = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
    interpreter.resize_tensor_input(source, [CHUNK, *images.shape[1:]])
    interpreter.allocate_tensors()
    out = []
    for start in range(0, len(images), CHUNK):
        interpreter.set_tensor(source, images[start : start + CHUNK])
        interpreter.invoke()
        out.append(np.argmax(interpreter.get_tensor(target), axis=1))
    return np.concatenate(out)


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    runs.add_output_flag(parser)
    parser.add_argument("--save-dir", default=None, help="also write the .tflite files here")
    parser.add_argument(
        "--test-digits", type=int, default=10_000, help=f"the first N test digits (a multiple of {CHUNK})"
    )
    args = parser.parse_args(argv)
    run = runs.evaluated_run(args.output)
    pixels, labels = mnist.load(mnist.TEST, args.test_digits)
    if len(pixels) % CHUNK:
        raise SystemExit(f"{len(pixels)} test digits: expected a multiple of {CHUNK}")
    saved_model = float((np.argmax(predict(run.model_uri, pixels), axis=1) == labels).mean())
    saved_cnn = runs.exported_cnn_accuracy(run, Digits(pixels, labels))
    model, images = trained_model(run.trainer_logs), mnist.scaled(pixels)
    results = {}
    for conversion in CONVERSIONS:
        flatbuffer = convert(model, conversion)
        accuracy = float((tflite_predictions(flatbuffer, images) == labels).mean())
        results[conversion] = {"bytes": len(flatbuffer), "test_accuracy": accuracy}
        if args.save_dir:
            os.makedirs(args.save_dir, exist_ok=True)
            with open(os.path.join(args.save_dir, f"digits-{conversion}.tflite"), "wb") as f:
                f.write(flatbuffer)
        print(f"{conversion}: {json.dumps(results[conversion])}", flush=True)
    return host.reported(
        {
            "run": run.run_id,
            "model": run.model_uri,
            "saved_model_test_accuracy": saved_model,
            "saved_model_cnn_test_accuracy": saved_cnn,
            "tflite": results,
        }
    )


if __name__ == "__main__":
    main()
