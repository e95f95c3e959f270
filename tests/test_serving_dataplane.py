"""`serving.dataplane`: the protocol-neutral results the REST and gRPC front ends translate."""

import numpy as np
from tensorflow_serving.apis import classification_pb2

from serving import rest_codec
from serving.servable import classification_result


def test_classification_results_as_tf_serving_writes_them():
    outputs = {"classes": np.array([[b"0", b"1"]], dtype=object), "scores": np.array([[0.25, 0.75]], np.float32)}
    result = classification_result(outputs)
    assert isinstance(result, classification_pb2.ClassificationResult)
    assert rest_codec.classify_response(result) == b'{"results":[[["0",0.25],["1",0.75]]]}'
    assert rest_codec.classify_response(classification_result({"scores": outputs["scores"]})) == (
        b'{"results":[[["",0.25],["",0.75]]]}'
    )
