"""ModelCard: what a version is, written into it before it is pushed.

Every pushed version carries `assets.extra/model_card.md` (for people) and `model_card.json` (for
tools) beside its SavedModel, so a model found in a serving directory, a bucket or a TF Serving pod
says what it is: its lineage (the examples and their fingerprint, the schema, the Trainer's model), how
it was trained, how it scored on the test split overall and per class (TFMA), the baseline it was
compared with, what the serving canary measured, its intended use and its known weaknesses (the most
frequent confusions, the weakest classes, and its accuracy on perturbed copies of the test digits).

TFX's Pusher pushes the model it is given: this component hands it a copy of the candidate with the
card inside (the candidate artifact itself stays as the Trainer wrote it).
"""

import datetime
import json
import os
from typing import Any, Dict, List, Optional, Tuple

import tensorflow as tf
import tensorflow_model_analysis as tfma
from absl import logging
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import Examples, InfraBlessing, Model, ModelBlessing, ModelEvaluation, Schema
from tfx.utils import io_utils, path_utils

from components.baseline import SERVED_VERSION, has_model
from components.examples import first_digits, split_files
from models import features, robustness
from models.config import exported_class_names

CARD_MARKDOWN = os.path.join("assets.extra", "model_card.md")
CARD_JSON = os.path.join("assets.extra", "model_card.json")
ACCURACY = "sparse_categorical_accuracy"
INTENDED_USE = (
    "Reads one handwritten digit per picture: 28x28 greyscale pixels, white ink on black as in MNIST "
    "(`predict_images`, `serving_default`, `classification`), or any picture of one digit (`predict_image_bytes`, "
    "which frames it as MNIST framed its digits). Not for several digits or characters in one picture, for "
    "other alphabets, or for decisions about people."
)
ROBUSTNESS_DIGITS = 2000


def _overall_and_per_class(result: tfma.EvalResult) -> Tuple[Optional[float], Dict[int, float]]:
    overall, per_class = None, {}
    for slice_key, metrics in result.slicing_metrics:
        value = metrics[""][""].get(ACCURACY, {}).get("doubleValue")
        if slice_key == ():
            overall = value
        elif len(slice_key) == 1 and slice_key[0][0] == features.LABEL_KEY:
            per_class[int(slice_key[0][1])] = value
    return overall, per_class


def _confusions(result: tfma.EvalResult) -> List[Tuple[int, int, int]]:
    """(true, predicted, count) off the diagonal of TFMA's confusion matrix on the overall slice, most first."""
    for slice_key, plots in result.plots:
        if slice_key != ():
            continue
        matrices = plots[""][""].get("multiClassConfusionMatrixAtThresholds", {}).get("matrices", [])
        entries = matrices[0].get("entries", []) if matrices else []
        pairs = [
            (int(e.get("actualClassId", 0)), int(e.get("predictedClassId", 0)), int(e.get("numWeightedExamples", 0)))
            for e in entries
        ]
        return sorted([p for p in pairs if p[0] != p[1] and p[2] > 0], key=lambda p: -p[2])
    return []


def card(
    model_name: str,
    model_dir: str,
    evaluation_uri: str,
    blessed: bool,
    canary: Dict[str, Any],
    examples: Dict[str, Any],
    schema_uri: str,
    trainer_config: Dict[str, Any],
    baseline: Dict[str, Any],
) -> Dict[str, Any]:
    """The card's contents, as JSON-ready values."""
    names = exported_class_names(model_dir) or tuple(features.CLASS_LABELS)
    candidate = tfma.load_eval_result(evaluation_uri, model_name=tfma.CANDIDATE_KEY) if baseline["found"] else None
    result = candidate or tfma.load_eval_result(evaluation_uri)
    overall, per_class = _overall_and_per_class(result)
    if baseline["found"]:
        baseline_result = tfma.load_eval_result(evaluation_uri, model_name=tfma.BASELINE_KEY)
        baseline["accuracy"] = _overall_and_per_class(baseline_result)[0]
    digits = first_digits(split_files(examples["uri"], features.TEST_SPLIT), ROBUSTNESS_DIGITS)
    signatures = tf.saved_model.load(model_dir).signatures
    perturbed = robustness.accuracies(signatures[features.IMAGES_SIGNATURE], digits.pixels, digits.labels)
    weakest = sorted(per_class.items(), key=lambda kv: kv[1])[:3]
    return {
        "model": {
            "name": model_name,
            "written": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "trainer_model": model_dir,
            "classes": list(names),
            "signatures": sorted(k for k in signatures if not k.startswith("__")),
        },
        "data": {"examples": examples, "schema": schema_uri},
        "training": trainer_config,
        "evaluation": {
            "test_accuracy": overall,
            "per_class_accuracy": {names[k]: v for k, v in sorted(per_class.items())},
            "blessed": blessed,
            "baseline": baseline,
        },
        "serving_canary": canary,
        "intended_use": INTENDED_USE,
        "known_weaknesses": {
            "most_frequent_confusions": [
                {"true": names[t], "predicted": names[p], "count": n} for t, p, n in _confusions(result)[:5]
            ],
            "weakest_classes": [{"class": names[k], "accuracy": v} for k, v in weakest],
            "robustness": {"test_digits": int(len(digits.labels)), **perturbed},
        },
    }


def _percent(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def markdown(contents: Dict[str, Any]) -> str:
    """The card for people."""
    model, data, evaluation = contents["model"], contents["data"], contents["evaluation"]
    weak, canary, training = contents["known_weaknesses"], contents["serving_canary"], contents["training"]
    baseline = evaluation["baseline"]
    against = (
        f"version {baseline['version']} ({_percent(baseline.get('accuracy'))})"
        if baseline["found"]
        else "none (the first model)"
    )
    per_class = " · ".join(f"{name} {_percent(v)}" for name, v in evaluation["per_class_accuracy"].items())
    confusions = "; ".join(
        f"{c['true']} read as {c['predicted']} ({c['count']})" for c in weak["most_frequent_confusions"]
    )
    robust = weak["robustness"]
    lines = [
        f"# Model card: {model['name']}",
        "",
        f"Written {model['written']}. Classes: {', '.join(model['classes'])}. Signatures: "
        f"{', '.join(model['signatures'])}.",
        "",
        "## Intended use",
        "",
        contents["intended_use"],
        "",
        "## Evaluation (test split, TFMA)",
        "",
        f"- accuracy **{_percent(evaluation['test_accuracy'])}**, blessed: {'yes' if evaluation['blessed'] else 'no'};"
        f" baseline: {against}",
        f"- per class: {per_class}",
        f"- serving canary: {canary.get('summary', 'n/a')}",
        "",
        "## Known weaknesses",
        "",
        f"- most frequent confusions: {confusions or 'none'}",
        "- weakest classes: " + ", ".join(f"{w['class']} ({_percent(w['accuracy'])})" for w in weak["weakest_classes"]),
        f"- on {robust['test_digits']:,} test digits: clean {_percent(robust['clean'])}; "
        + "; ".join(f"{robustness.DESCRIPTIONS[k]} {_percent(robust[k])}" for k in robustness.PERTURBATIONS),
        "",
        "## Lineage and training",
        "",
        f"- examples: `{data['examples']['uri']}` (span {data['examples'].get('span')}, "
        f"fingerprint `{str(data['examples'].get('fingerprint')).replace(chr(10), '; ')}`)",
        f"- schema: `{data['schema']}`; Trainer's model: `{model['trainer_model']}`",
        f"- training: {json.dumps(training, sort_keys=True)}",
        "",
    ]
    return "\n".join(lines)


@component
def ModelCard(
    model: InputArtifact[Model],
    evaluation: InputArtifact[ModelEvaluation],
    blessing: InputArtifact[ModelBlessing],
    infra_blessing: InputArtifact[InfraBlessing],
    baseline: InputArtifact[Model],
    examples: InputArtifact[Examples],
    schema: InputArtifact[Schema],
    model_with_card: OutputArtifact[Model],
    model_name: Parameter[str],
    trainer_config: Parameter[str],
) -> None:
    """Copies the candidate into `model_with_card` with its card in assets.extra/ (what the Pusher pushes)."""
    from components.canary import PROPERTY_SUFFIX, REASON, p99_line  # The canary's blessing properties.

    source = path_utils.serving_model_path(model.uri)
    # TFX's getters: on Kubeflow, custom properties arrive as JSON values.
    canary = {k: infra_blessing.get_custom_property(k) for k in infra_blessing.mlmd_artifact.custom_properties}
    passed = infra_blessing.get_int_custom_property("blessed") == 1
    canary["summary"] = (
        "passed, one digit p99 " + p99_line(canary, PROPERTY_SUFFIX)
        if passed
        else f"refused: {infra_blessing.get_string_custom_property(REASON)}"
    )
    contents = card(
        model_name=model_name,
        model_dir=source,
        evaluation_uri=evaluation.uri,
        blessed=blessing.get_int_custom_property("blessed") == 1,
        canary=canary,
        examples={
            "uri": examples.uri,
            "span": examples.get_int_custom_property("span"),
            "fingerprint": examples.get_string_custom_property("input_fingerprint"),
        },
        schema_uri=schema.uri,
        trainer_config=json.loads(trainer_config),
        baseline={"found": has_model(baseline), "version": baseline.get_int_custom_property(SERVED_VERSION)},
    )
    target = path_utils.serving_model_path(model_with_card.uri)
    io_utils.copy_dir(source, target)
    with tf.io.gfile.GFile(os.path.join(target, CARD_JSON), "w") as f:
        f.write(json.dumps(contents, indent=1, sort_keys=True))
    with tf.io.gfile.GFile(os.path.join(target, CARD_MARKDOWN), "w") as f:
        f.write(markdown(contents))
    logging.info("Model card written: %s", os.path.join(target, CARD_MARKDOWN))
