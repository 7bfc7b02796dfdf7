# The ordergraph API. Build: docker build -t ordergraph .   Run: see docker-compose.yml.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The dependencies exactly as locked (versions and file hashes; scripts/lock writes the
# lock), in a layer of their own that is rebuilt only when the lock changes. Then the
# project itself with --no-deps: nothing more is installed into the image (pip fetches
# only the build backend, hatchling, into a throwaway build environment).
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

COPY pyproject.toml README.md ./
COPY ordergraph ./ordergraph
COPY domain ./domain
COPY storage ./storage
COPY schema ./schema
COPY resolvers ./resolvers
COPY live ./live
RUN pip install --no-deps . && rm -rf /app/*

RUN useradd --system --create-home --home-dir /home/ordergraph ordergraph
USER ordergraph
WORKDIR /home/ordergraph

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# `serve` applies pending migrations first, then serves.
CMD ["ordergraph", "serve", "--host", "0.0.0.0", "--port", "8000"]
