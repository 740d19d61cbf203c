"""The quality harness: bytes, encode time, SSIMULACRA2 and SSIM per output.

    .venv/bin/python -m benchmarks.quality [--repeat 3] [--only photo|drawn] [--limit N]
    .venv/bin/python -m benchmarks.quality --report benchmarks/results/quality-DATE.json

Renders each photo of the corpus and each drawn image to 800 px wide (or
its own width) through the service's render path, losslessly, then encodes
those pixels with every setting of ``benchmarks.quality.encoders`` (the
service's defaults, the sweeps, Pillow's baseline, sharp's defaults) and
scores every output against them. Writes ``benchmarks/results/quality-<date>``
``.json`` (every row), ``.md`` (the tables and answers) and ``.png`` (bytes
against SSIMULACRA2 per format). About 30 minutes on 2 shared cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

from .. import corpus
from ..competitors import ROOT, describe_machine, service_defaults
from . import harness, images, plots, report

RESULTS = os.path.join(ROOT, "benchmarks", "results")


def measure(args: argparse.Namespace) -> dict[str, object]:
    originals = images.selected(args.corpus, args.only, args.limit)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="quality-") as workdir:
        run = harness.Harness(workdir, args.repeat)
        for original in originals:
            print(f"quality: encoding {original.name}", file=sys.stderr, flush=True)
            run.add(original)
        print(f"quality: scoring {len(run.pending)} outputs", file=sys.stderr, flush=True)
        rows, sharp_about = run.run()
    quality, effort = service_defaults()
    return {
        "started": started,
        "machine": {**describe_machine(), "python_impl": platform.python_implementation()},
        "repeat": args.repeat,
        "service_defaults": {"quality": quality, "avif_effort": effort},
        "ours_identical_to_service": run.identical,
        "sharp": sharp_about,
        "rows": [row.as_json() for row in rows],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3, help="encode runs per setting (median)")
    parser.add_argument("--only", choices=("photo", "drawn"))
    parser.add_argument("--limit", type=int, help="the first N images of each kind")
    parser.add_argument("--corpus", default=os.path.join(ROOT, corpus.DEFAULT_DIR))
    parser.add_argument("--report", metavar="JSON", help="redo the tables and chart of a run")
    args = parser.parse_args()
    if args.report:
        target = os.path.splitext(args.report)[0]
        with open(args.report) as handle:
            results = json.load(handle)
    else:
        results = measure(args)
        stamp = time.strftime("%Y-%m-%d-%H%M%S", time.gmtime())
        target = os.path.join(RESULTS, f"quality-{stamp}")
        with open(target + ".json", "w") as handle:
            json.dump(results, handle, indent=1)
    with open(target + ".md", "w") as handle:
        handle.write(report.markdown(results))
    plots.draw(results, target + ".png")
    print(f"quality: {target}.{{json,md,png}}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
