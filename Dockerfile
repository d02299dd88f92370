# A small image that runs `aggregator serve`. Mount your config at /config/integrations.yaml:
#   docker build -t aggregator .
#   docker run --rm -p 8000:8000 -v "$PWD/my-integrations.yaml:/config/integrations.yaml:ro" aggregator
# Without a mount it serves the bundled demo config (whose upstreams are not in the image: its fields
# then fail with UPSTREAM_UNAVAILABLE, which is how the gateway behaves with every upstream down).

# The wheel, built as `pip install .` builds it: the build puts GraphiQL's browser assets (pinned,
# integrity-checked, fetched unless the context has them) inside the package, or fails.
# tests/test_packaging.py runs these build steps outside Docker and serves GraphiQL from the result.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md MANIFEST.in build_backend.py ./
COPY aggregator ./aggregator
RUN pip wheel --no-deps --wheel-dir /wheels .

# The image: the wheel installed, no source tree, no build tools left behind.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY --from=build /wheels /wheels
COPY aggregator/demo/integrations.yaml /config/integrations.yaml
COPY aggregator/demo/protos /config/protos
RUN pip install /wheels/*.whl \
 && rm -rf /wheels \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin aggregator

WORKDIR /
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3)"]
CMD ["aggregator", "serve", "--host", "0.0.0.0", "--port", "8000", "-c", "/config/integrations.yaml"]
