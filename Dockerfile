# The boxoffice image: exporter, sms-bridge and the db/generate commands, run by
# docker-compose.yml through docker/entrypoint.sh.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/boxoffice
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip install . \
    && useradd --system --uid 10001 --create-home --home-dir /var/lib/boxoffice boxoffice
COPY docker/entrypoint.sh /usr/local/bin/boxoffice-entrypoint

USER boxoffice
WORKDIR /var/lib/boxoffice
EXPOSE 9798 9799
ENTRYPOINT ["boxoffice-entrypoint"]
CMD ["serve"]
