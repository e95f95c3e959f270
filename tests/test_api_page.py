"""The API page (`/docs`) in real headless Chromium, as a person uses it: the bundled Swagger UI renders
the server's OpenAPI description (it refuses a version it cannot read with "does not specify a valid
version field"), lists every route, and "Try it out" on predict answers from the served model, as the
REST client does."""

import json

import pytest

from models import features
from reports.browser import opened
from serving.client import RestClient
from tests import support
from tests.support import needs_chromium

PREDICT = "/v1/models/{model_name}:predict"


@pytest.fixture(scope="module")
def server(served_model, tmp_path_factory):
    with support.rest_server(served_model, str(tmp_path_factory.mktemp("api-page"))) as server:
        yield server


@pytest.mark.e2e
@needs_chromium
def test_the_api_page_lists_the_routes_and_try_it_out_answers_a_predict(server):
    pixels, _ = support.mnist_digits("t10k", 1)
    body = {"signature_name": features.IMAGES_SIGNATURE, "instances": pixels.astype(int).tolist()}
    with opened(server.rest_url + "/docs") as page:
        page.wait_for_selector(".opblock", timeout=60_000)
        assert "valid version field" not in page.content()
        paths = set(page.locator(".opblock-summary-path").evaluate_all("spans => spans.map(s => s.dataset.path)"))
        assert {PREDICT, "/v1/models/{model_name}", "/v1/models/{model_name}/metadata"} <= paths, paths
        assert "/v1/models/{model_name}/versions/{version}:classify" in paths, paths
        predict = page.locator(".opblock", has=page.locator(f'.opblock-summary-path[data-path="{PREDICT}"]'))
        predict.locator(".opblock-summary").first.click()
        predict.locator(".try-out__btn").click()
        predict.locator('input[placeholder="model_name"]').fill(features.MODEL_NAME)
        predict.locator("textarea.body-param__text").fill(json.dumps(body))
        predict.locator(".execute").click()
        status = predict.locator(".live-responses-table tbody .response-col_status")
        status.wait_for(timeout=60_000)
        assert status.inner_text().strip() == "200"
        answer = json.loads(
            predict.locator(".live-responses-table tbody .response-col_description .microlight").first.inner_text()
        )
    expected = RestClient(server.rest_url).classify_pixels(pixels)[0]
    (prediction,) = answer["predictions"]
    assert prediction[features.DIGIT_OUTPUT] == expected.digit
