"""DigitExampleGen: IDX, Kaggle CSV and PNG-folder digit datasets to tf.Example splits."""

from components.digit_example_gen.component import DigitExampleGen, detect_input_config
from components.digit_example_gen.readers import DigitDataError

__all__ = ["DigitExampleGen", "DigitDataError", "detect_input_config"]
