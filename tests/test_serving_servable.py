"""`serving.servable`: what a model's refusal says once the graph noise is taken out."""

import tensorflow as tf

from serving.servable import model_message


def test_model_errors_keep_the_line_that_says_what_is_wrong():
    assertion = tf.errors.InvalidArgumentError(
        None,
        None,
        "Graph execution error:\n\nDetected at node x\n"
        "<stack traces unavailable>\nassertion failed: [input \\'images\\': "
        "pixel values must be numbers] \n\t [[{{node Assert}}]]",
    )
    assert model_message(assertion) == "input 'images': pixel values must be numbers"
    reshape = tf.errors.InvalidArgumentError(
        None,
        None,
        "Graph execution error:\n\nDetected at node R\n"
        "<stack traces unavailable>\nInput to reshape is a tensor with 783 values"
        "\n\t [[{{node R}}]] [Op:__inference_signature_wrapper_2334]",
    )
    assert model_message(reshape) == "Input to reshape is a tensor with 783 values"
