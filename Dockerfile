# Image Factory: a first working image (the deployment issue hardens it).
# Debian's Python 3.11; libvips comes from the pyvips[binary] wheel.
FROM debian:bookworm-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --system --create-home --home-dir /home/imagefactory --uid 10001 imagefactory \
 && mkdir -p /var/cache/image-factory \
 && chown imagefactory /var/cache/image-factory

WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/venv/bin/pip install --no-cache-dir .

ENV IMAGE_FACTORY_HOST=0.0.0.0 \
    IMAGE_FACTORY_PORT=8080 \
    IMAGE_FACTORY_CACHE_DIR=/var/cache/image-factory
VOLUME ["/var/cache/image-factory"]
EXPOSE 8080
USER imagefactory
CMD ["/opt/venv/bin/image-factory"]
