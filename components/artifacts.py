"""The pipeline's own artifact types.

Their TYPE_NAME is `components.<Class>`: a valid Kubeflow schema title (`<namespace>.<Name>`), and the
path by which TFX's entrypoint in a Kubeflow pod imports a custom type's class (the `components`
package hands them on). No properties: what Kubeflow V2 accepts of a custom type.
"""

from tfx import types


class ValidatedStatistics(types.Artifact):
    """Statistics of data that passed AnomalyGate, laid out as ExampleStatistics
    (`Split-<name>/FeatureStats.pb`): the reference the next run's drift check compares with."""

    TYPE_NAME = "components.ValidatedStatistics"


class Submission(types.Artifact):
    """A Kaggle submission file, `submission.csv`."""

    TYPE_NAME = "components.Submission"
