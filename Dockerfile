# The ordergraph API. Build: docker build -t ordergraph .   Run: see docker-compose.yml.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

COPY pyproject.toml README.md ./
COPY ordergraph ./ordergraph
COPY domain ./domain
COPY storage ./storage
COPY schema ./schema
COPY resolvers ./resolvers
COPY live ./live
RUN pip install . && rm -rf /app/*

RUN useradd --system --create-home --home-dir /home/ordergraph ordergraph
USER ordergraph
WORKDIR /home/ordergraph

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# `serve` applies pending migrations first, then serves.
CMD ["ordergraph", "serve", "--host", "0.0.0.0", "--port", "8000"]
