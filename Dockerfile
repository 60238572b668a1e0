# tuner: workers, the one-shot init step and the dashboard share this image.
# Versions are pinned by the package metadata; every container runs in UTC so that all
# workers write comparable timestamps (Optuna 5 stores naive UTC).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TZ=UTC PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY tuner ./tuner
COPY search_spaces ./search_spaces
COPY studies ./studies
ARG EXTRAS=postgres
RUN pip install ".[${EXTRAS}]"
# User code (model builders, data modules) is arbitrary code: never run it as root.
RUN useradd --create-home --uid 10001 tuner \
    && mkdir /app/tuner-artifacts && chown tuner /app/tuner-artifacts
# Owned by tuner, so a volume mounted here (compose's artifacts) is writable by it.
USER tuner
ENTRYPOINT ["tuner"]
CMD ["--help"]
