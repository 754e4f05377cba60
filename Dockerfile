# The orderflow worker (and CLI) image. Build: docker compose build, or docker build -t orderflow .
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ORDERFLOW_DATA_DIR=/var/lib/orderflow \
    ORDERFLOW_SEEDS_DIR=/app/seeds

RUN groupadd --system --gid 10001 orderflow \
 && useradd --system --uid 10001 --gid orderflow --home-dir /app --shell /usr/sbin/nologin orderflow \
 && mkdir -p /var/lib/orderflow \
 && chown orderflow:orderflow /var/lib/orderflow

WORKDIR /app

# Dependencies first, in their own layer, with exactly the == pins pyproject.toml declares.
# (README.m[d]: pyproject names it as the long description; the glob keeps the build working
# while it is absent.)
COPY pyproject.toml README.m[d] ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/requirements.txt', 'w').write(chr(10).join(deps) + chr(10))" \
 && pip install --requirement /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# Then the project itself (no new dependencies may sneak in here).
COPY domain ./domain
COPY workflows ./workflows
COPY activities ./activities
COPY orderflow ./orderflow
COPY seeds ./seeds
COPY worker.py ./
RUN pip install --no-deps . \
 && pip check \
 && rm -rf build ./*.egg-info

USER orderflow

# SDK Prometheus metrics when ORDERFLOW_METRICS_PORT=9000 is set.
EXPOSE 9000

# SIGTERM: stop polling, let running activities finish (20 s), then exit.
STOPSIGNAL SIGTERM
CMD ["python", "worker.py"]
