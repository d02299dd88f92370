# A small image that runs `aggregator serve`. Mount your config at /config/integrations.yaml:
#   docker build -t aggregator .
#   docker run --rm -p 8000:8000 -v "$PWD/my-integrations.yaml:/config/integrations.yaml:ro" aggregator
# Without a mount it serves the bundled demo config (whose upstreams are not in the image: its fields
# then fail with UPSTREAM_UNAVAILABLE, which is how the gateway behaves with every upstream down).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY aggregator ./aggregator
# GraphiQL's browser assets are fetched (pinned, integrity-checked) into the installed package, so the
# page works where browsers cannot reach a CDN; the source tree is not kept in the image.
RUN pip install . \
 && python -m aggregator.server.assets \
 && mkdir /config \
 && cp aggregator/demo/integrations.yaml /config/integrations.yaml \
 && rm -rf /src \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin aggregator

WORKDIR /
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3)"]
CMD ["aggregator", "serve", "--host", "0.0.0.0", "--port", "8000", "-c", "/config/integrations.yaml"]
