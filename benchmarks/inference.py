"""The served model's arithmetic per digit, runtime by runtime, side by side on the pushed model: what
bounds a server's throughput on this CPU before any HTTP, JSON or batching.

    .venv/bin/python -m benchmarks.inference [--output output] [--batch 16] [--rounds 3]

Each runtime runs in a process of its own (the settings are read when TensorFlow starts), on the same
`--batch` test digits, for `--rounds` rounds of at least two seconds; it reports digits per second
(wall clock) and CPU milliseconds per digit (median over rounds), how far its probabilities are from
those of the first runtime of its kind measured (TensorFlow's, with the default list), and the
arithmetic rate that is: the CNN's floating-point operations per digit (two per multiply-add, counted
from its layers, three readings) times the digits per second.

- "TensorFlow": the `predict_images` signature as the server calls it (test-time augmentation: each
  digit read three times), with TensorFlow's defaults (oneDNN on).
- "TensorFlow, oneDNN off" (`TF_ENABLE_ONEDNN_OPTS=0`), "TensorFlow, XLA auto-clustering"
  (`TF_XLA_FLAGS=--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit`): the same signature.
- "TF Lite": the same signature converted (TF Lite builtins, and TensorFlow's kernels for the ops TF
  Lite lacks: the rotations).
- "CNN alone, TensorFlow" and "CNN alone, TF Lite (XNNPACK)": the network on the three readings of each
  digit, already rotated (three times `--batch` pictures), without the rest of the signature.

Beside them, "float32 peak (numpy BLAS)": the CPU's float32 arithmetic at its best, a 2048x2048
matrix product on every core, and the digits per second it would read if the model's arithmetic ran at
that rate with nothing else to do: a ceiling no runtime or server reaches on this CPU.

Recorded under the topic "serving", one measurement per runtime ("model arithmetic: <runtime>").
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from benchmarks import report
from models import features
from pipeline import configs, mnist, summary

RUNTIMES: Dict[str, Dict[str, str]] = {
    "TensorFlow": {},
    "TensorFlow, oneDNN off": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "TensorFlow, XLA auto-clustering": {"TF_XLA_FLAGS": "--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit"},
    "TF Lite": {},
    "CNN alone, TensorFlow": {},
    "CNN alone, TF Lite (XNNPACK)": {},
}
"""Each runtime, with the environment its process starts with."""
CNN_ALONE = "CNN alone"
ROUND_SECONDS = 2.0
THREADS = 2
"""TF Lite's interpreter threads: the cores of the machines this project is measured on."""


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _timed(call: Callable[[], object], digits: int, rounds: int) -> Dict[str, float]:
    """Digits per second and CPU ms per digit of `call` (which reads `digits` digits), median of rounds."""
    for _ in range(3):  # First calls trace and allocate.
        call()
    rates, cpu = [], []
    for _ in range(rounds):
        calls, started, cpu_started = 0, time.perf_counter(), _cpu_seconds()
        while time.perf_counter() - started < ROUND_SECONDS:
            call()
            calls += 1
        elapsed = time.perf_counter() - started
        rates.append(calls * digits / elapsed)
        cpu.append((_cpu_seconds() - cpu_started) * 1000 / (calls * digits))
    return {"digits_per_s": round(statistics.median(rates), 1), "cpu_ms_per_digit": round(statistics.median(cpu), 3)}


def float32_peak(rounds: int, size: int = 2048) -> float:
    """GFLOP/s of a `size`x`size` float32 matrix product in numpy's BLAS (every core), median of rounds."""
    matrix = np.random.default_rng(0).random((size, size), dtype=np.float32)
    rates = []
    for _ in range(rounds):
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < ROUND_SECONDS:
            matrix @ matrix
            calls += 1
        rates.append(calls * 2 * size**3 / (time.perf_counter() - started) / 1e9)
    return round(statistics.median(rates), 1)


def measure(runtime: str, model_dir: str, batch: int, rounds: int) -> Dict[str, object]:
    """One runtime's figures and the probabilities it gives, in this process (its environment already
    set)."""
    import tensorflow as tf

    from models import export

    loaded = tf.saved_model.load(model_dir)
    signature = loaded.signatures[features.IMAGES_SIGNATURE]
    images, _ = mnist.load(mnist.TEST, batch)
    pixels = images.reshape(batch, -1)
    if runtime.startswith(CNN_ALONE):
        readings = export.tta_readings(tf.constant(mnist.scaled(images)), configs.TEST_TIME_ROTATION).numpy()
        if runtime.endswith("(XNNPACK)"):
            cnn = tf.function(lambda x: loaded(x, training=False))
            concrete = cnn.get_concrete_function(tf.TensorSpec(readings.shape, tf.float32))
            predict = _tflite(tf.lite.TFLiteConverter.from_concrete_functions([concrete], loaded), readings)
        else:
            tensor = tf.constant(readings)
            predict = lambda: loaded(tensor, training=False).numpy()  # noqa: E731
    elif runtime == "TF Lite":
        function = tf.function(lambda images: signature(**{features.IMAGES_INPUT: images}))
        concrete = function.get_concrete_function(tf.TensorSpec([batch, pixels.shape[1]], tf.float32))
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], loaded)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
        predict = _tflite(converter, pixels)
    else:
        tensor = tf.constant(pixels)
        predict = lambda: signature(**{features.IMAGES_INPUT: tensor})[features.PROBABILITIES_OUTPUT].numpy()  # noqa: E731
    figures: Dict[str, object] = {**_timed(predict, batch, rounds)}
    figures["probabilities"] = np.asarray(predict()).tolist()
    return figures


def multiply_adds_per_picture() -> int:
    """The CNN's multiply-adds for one 28x28 picture, counted from its layers' shapes (convolutions
    and dense layers; batch norm, pooling and activations are a few per value and left out)."""
    from models import network

    count = 0
    for layer in network.build_model(learning_rate=1e-3).layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            height, width, filters = layer.output.shape[1:]
            count += height * width * filters * int(np.prod(layer.kernel.shape[:3]))
        elif kind == "Dense":
            count += int(np.prod(layer.kernel.shape))
    return count


def _tflite(converter: Any, inputs: np.ndarray) -> Callable[[], np.ndarray]:
    """The converted model's interpreter on `inputs`: a function giving its probabilities, the output
    of one row of classes per input (a converted signature names its outputs by position only)."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=converter.convert(), num_threads=THREADS)
    interpreter.allocate_tensors()
    (given,) = interpreter.get_input_details()
    (index,) = (
        o["index"] for o in interpreter.get_output_details() if list(o["shape"]) == [len(inputs), features.NUM_CLASSES]
    )

    def predict() -> np.ndarray:
        interpreter.set_tensor(given["index"], inputs)
        interpreter.invoke()
        return interpreter.get_tensor(index)

    return predict


def _in_child(runtime: str, model_dir: str, batch: int, rounds: int) -> Dict[str, Any]:
    """`measure` in a fresh process with the runtime's environment."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **RUNTIMES[runtime])
    command = [sys.executable, "-m", "benchmarks.inference", "--child", runtime, "--model", model_dir]
    command += ["--batch", str(batch), "--rounds", str(rounds)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=configs.PROJECT_ROOT, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{runtime} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--output", default=configs.OUTPUT_ROOT, help="a pipeline run's --output folder")
    parser.add_argument("--batch", type=int, default=16, help="digits per call")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runtimes", nargs="+", choices=list(RUNTIMES), default=list(RUNTIMES))
    parser.add_argument("--child", choices=list(RUNTIMES), help=argparse.SUPPRESS)
    parser.add_argument("--model", help="a digits SavedModel to measure (default: the newest pushed model in --output)")
    parser.add_argument("--note", default="", help="what the records should say of this run (the model served, say)")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.model, args.batch, args.rounds)))
        return {}
    model = args.model or summary.latest_run(configs.metadata_path(args.output), pushed=True).pushed_to
    if not model:
        raise SystemExit(f"no pushed model in {args.output}: run the pipeline first (make run)")
    readings = 3  # Test-time augmentation: each digit as it is and rotated both ways.
    mflop_per_digit = round(2 * readings * multiply_adds_per_picture() / 1e6, 1)
    measurements: Dict[str, Dict[str, Any]] = {}
    references: Dict[bool, np.ndarray] = {}
    for runtime in args.runtimes:
        print(f"{runtime} ...", file=sys.stderr, flush=True)
        figures = _in_child(runtime, model, args.batch, args.rounds)
        probabilities = np.asarray(figures.pop("probabilities"))
        kind = runtime.startswith(CNN_ALONE)
        reference = references.setdefault(kind, probabilities)  # TensorFlow's, listed first of each kind.
        figures["max_difference"] = float(np.abs(probabilities - reference).max())
        figures["gflop_per_s"] = round(mflop_per_digit * figures["digits_per_s"] / 1000, 1)
        measurements[f"model arithmetic: {runtime}"] = {
            "batch": args.batch,
            "mflop_per_digit": mflop_per_digit,
            **figures,
        }
    peak = float32_peak(args.rounds)
    measurements["model arithmetic: float32 peak (numpy BLAS)"] = {
        "mflop_per_digit": mflop_per_digit,
        "gflop_per_s": peak,
        "digits_per_s": round(peak * 1000 / mflop_per_digit, 1),
    }
    return report.recorded("serving", measurements, "benchmarks.inference", argv, {"model": model}, args.note)


if __name__ == "__main__":
    main()
