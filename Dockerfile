# The detector's image: `docker compose build detector`, or `docker build -t newterms-detector .`
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 detector \
    && useradd --system --uid 10001 --gid detector --home-dir /home/detector --create-home detector \
    && mkdir -p /run/detector \
    && chown detector:detector /run/detector

WORKDIR /src
COPY pyproject.toml README.md ./
COPY detector ./detector
RUN pip install . && rm -rf /src

USER detector
# Settings come from DETECTOR_* variables and from /run/detector/.env, where `detector setup`
# writes the API key (a volume shared by the setup and detector services).
WORKDIR /run/detector
ENTRYPOINT ["detector"]
CMD ["run"]
