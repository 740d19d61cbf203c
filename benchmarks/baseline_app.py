"""The baseline: the classic Flask + Pillow image-factory design, faithfully.

    BASELINE_ORIGINALS=DIR BASELINE_CACHE_DIR=DIR \\
        gunicorn -w 2 -k sync -b 127.0.0.1:8081 benchmarks.baseline_app:app

``/picture/<path>?scalex=&scaley=&encoding=``: open the original with
Pillow, ``Image.thumbnail`` (Pillow's defaults: ``draft()`` JPEG DCT scaling,
LANCZOS, ``reducing_gap=2.0``), save into a cache directory under a name made
of the parameters, and answer with ``send_from_directory``; a second request
for the same name is a file send. The output format is ``encoding``, else the
original's extension. Only what keeps it crash-free is added: missing
parameters keep the original size, a missing file is a 404, an unknown
format a 400, RGBA/P images are converted to RGB for JPEG, and a render is
written under a temporary name then renamed (two workers may render the
same name at once). The quality of JPEG, WebP and AVIF output is set to the
service's defaults (``BASELINE_QUALITY``, from the benchmark) so that both
sides encode alike; everything else is Pillow's default.

It runs in the benchmark's own venv (Flask, gunicorn, Pillow), not in the
project's.
"""

from __future__ import annotations

import os

from flask import Flask, abort, request, send_from_directory
from PIL import Image
from werkzeug.security import safe_join
from werkzeug.wrappers import Response

ORIGINALS = os.environ.get("BASELINE_ORIGINALS", ".")
CACHE_DIR = os.environ.get("BASELINE_CACHE_DIR", "/tmp/baseline-cache")  # noqa: S108
FORMATS = {
    "jpeg": "JPEG",
    "jpg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "avif": "AVIF",
    "gif": "GIF",
}
# The service's defaults, passed by the benchmark (BASELINE_QUALITY=jpeg=80,...).
QUALITY = {"JPEG": 80, "WEBP": 80, "AVIF": 60}
for _item in os.environ.get("BASELINE_QUALITY", "").split(","):
    if "=" in _item:
        _name, _value = _item.split("=", 1)
        QUALITY[FORMATS[_name.strip().lower()]] = int(_value)

app = Flask(__name__)
os.makedirs(CACHE_DIR, exist_ok=True)


@app.route("/healthz")
def healthz() -> dict[str, object]:
    return {"status": "ok", "pid": os.getpid()}


@app.route("/picture/<path:filename>")
def picture(filename: str) -> Response:
    scalex = request.args.get("scalex", type=int)
    scaley = request.args.get("scaley", type=int)
    source = safe_join(ORIGINALS, filename)
    if source is None or not os.path.isfile(source):
        abort(404)
    extension = (request.args.get("encoding") or os.path.splitext(filename)[1][1:]).lower()
    if extension not in FORMATS:
        abort(400)
    name = f"{filename.replace('/', '_')}_{scalex or 0}x{scaley or 0}.{extension}"
    target = os.path.join(CACHE_DIR, name)
    if not os.path.exists(target):
        with Image.open(source) as opened:
            image: Image.Image = opened
            image.thumbnail((scalex or image.width, scaley or image.height))
            fmt = FORMATS[extension]
            if fmt == "JPEG" and image.mode not in ("RGB", "L"):
                image = image.convert("RGB")
            options = {"quality": QUALITY[fmt]} if fmt in QUALITY else {}
            partial = f"{target}.{os.getpid()}.tmp"
            image.save(partial, fmt, **options)
            os.replace(partial, target)
    return send_from_directory(CACHE_DIR, name)
