# Image Factory: production image.
#
#   docker build -t image-factory .
#   docker run -p 8080:8080 -v /srv/photos:/originals:ro \
#       -e IMAGE_FACTORY_ORIGINALS=/originals image-factory
#
# Load-test a deployment with the image's own client (no --chart: matplotlib
# is left out):
#   docker run --rm -i --network host image-factory loadtest \
#       http://127.0.0.1:8080 --paths - < urls.txt
#
# Configuration only through IMAGE_FACTORY_* variables (docs/configuration.md).
# libvips comes from the pyvips[binary] wheel, so no system libvips is needed.

# ---- build: a venv with the service and its wheels --------------------------
FROM debian:bookworm-slim AS build

# The real bookworm-slim already excludes docs; stand-in bases may not.
COPY deploy/dpkg-nodoc.cfg /etc/dpkg/dpkg.cfg.d/01-image-factory-nodoc
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# ca-certificates also trusts any CA a build host mounts into
# /usr/local/share/ca-certificates (proxies that re-sign TLS).
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
RUN /opt/venv/bin/pip install --no-compile . \
 # pip and setuptools are build tools: the runtime never installs anything.
 && /opt/venv/bin/pip uninstall -y pip setuptools \
 && /opt/venv/bin/python3 -m compileall -q -j 0 /opt/venv/lib

# ---- runtime -----------------------------------------------------------------
FROM debian:bookworm-slim

COPY deploy/dpkg-nodoc.cfg /etc/dpkg/dpkg.cfg.d/01-image-factory-nodoc
# python3 only (no venv, no pip).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
        /var/log/apt /var/log/dpkg.log /var/cache/debconf/*-old \
 && useradd --system --uid 10001 --user-group --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin imagefactory \
 && mkdir -p /var/cache/image-factory \
 && chown imagefactory:imagefactory /var/cache/image-factory

COPY --from=build /opt/venv /opt/venv
COPY deploy/healthcheck.py /usr/local/bin/image-factory-healthcheck

# Memory: libvips allocates and frees large pixel buffers from many threads.
# glibc tuned as the service tunes it outside the container (one arena,
# buffers >= 1 MiB mmapped on transparent huge pages, so freed ones go back to
# the kernel at almost no CPU cost), which keeps peak RSS well below glibc's
# defaults and jemalloc's (measured with scripts/measure_allocator.py:
# docs/operating.md, "Allocator"). Set here so the service need not
# re-execute itself.
ENV GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.mmap_threshold=1048576:glibc.malloc.hugetlb=1 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IMAGE_FACTORY_HOST=0.0.0.0 \
    IMAGE_FACTORY_PORT=8080 \
    IMAGE_FACTORY_CACHE_DIR=/var/cache/image-factory

# q=auto's scorer is compiled by numba on its first use (about 6 s); compiled
# here once, as the runtime user, a process loads it in well under a second.
# numba reads its cache only from a folder it can write, so the folder is in
# /tmp: writable in the container's own layer, and where /tmp is a tmpfs
# (`--read-only --tmpfs /tmp`) the first q=auto render compiles into it again,
# once per container. Not the cache volume: its byte bound covers every file.
# The compiled code is this CPU model's; on another, the first q=auto render
# compiles again. Warmed with read-only pixels, with and without alpha: the
# arrays a render scores (numba compiles each kind of array apart).
ENV NUMBA_CACHE_DIR=/tmp/image-factory-numba
USER imagefactory:imagefactory
RUN /opt/venv/bin/python3 -c "import numpy as n; from service.render.ssimulacra2 import ssimulacra2 as s; [s(p, p) for p in (n.frombuffer(bytes(256 * c), n.uint8).reshape(16, 16, c) for c in (3, 4))]"

VOLUME ["/var/cache/image-factory"]
EXPOSE 8080
WORKDIR /var/cache/image-factory

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/opt/venv/bin/python3", "/usr/local/bin/image-factory-healthcheck"]

# SIGTERM (docker stop): /healthz turns 503 for 3 s (--drain-seconds), then
# in-flight renders finish within 22 s, exit 0. Give it that long:
# `docker stop -t 30`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/venv/bin/image-factory"]
