"""What a run's model reads on the drawing page: a "7" drawn with the mouse in headless Chromium at full
size, at a third of the pad in a corner and at a quarter of it elsewhere, as a person draws on the
served page (`/`), driven by `reports.browser` as the drawing-page test drives it with the smoke model.

    .venv/bin/python -m benchmarks.drawing [--output output] [--label LABEL]

The model is the newest pushed one under `--output`, served by this project's server on a free loopback
port. The page's pen is 22 px on a 280 px pad, so the smaller drawings are bolder once framed to MNIST's
20 px box: the smoke model, 4 epochs on 2,400 digits, reads some of them as a 9 in some of its trainings.
Recorded under the topic "pictures" as "drawing page": how many places were read right, and the
probability of a 7 at each. Needs Debian's chromium (`make browser`).
"""

import argparse
import time
from typing import Dict, List, Optional

from benchmarks import report, runs
from benchmarks.serving import served
from reports.browser import CHROMIUM, DRAWN_DIGIT, PLACES, draw, drawing_page


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    runs.add_output_flag(parser)
    runs.add_label_flag(parser)
    args = parser.parse_args(argv)
    if CHROMIUM is None:
        raise SystemExit("needs Debian's chromium: `make browser` (root) installs it")
    model = runs.pushed_model(args.output)
    started = time.perf_counter()
    with served(model, port=None) as server, drawing_page(server.rest_url) as page:
        drawings = {name: draw(page, *place) for name, place in PLACES.items()}
    figures = {
        "read_right": sum(d.digit == str(DRAWN_DIGIT) for d in drawings.values()),
        "places": len(drawings),
        f"probability_of_{DRAWN_DIGIT}": {name: round(d.probabilities[DRAWN_DIGIT], 4) for name, d in drawings.items()},
    }
    details = {
        "model": model,
        "drawn": DRAWN_DIGIT,
        "read": {name: d.digit for name, d in drawings.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }
    name = runs.labelled("drawing page", args.label)
    return report.recorded("pictures", {name: figures}, "benchmarks.drawing", argv, details)


if __name__ == "__main__":
    main()
