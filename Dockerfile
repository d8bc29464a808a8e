# One Agent Network node: `docker build -t agentnet-node .`, then `docker run ... agentnet-node`
# runs `agentnet run --data-dir /data`; any other `agentnet` command is `docker run ... agentnet-node
# COMMAND ...`. docker-compose.federation.yml runs two companies' nodes from this image.
#
# Bookworm, pinned: its postgresql-client is version 15, and pg_dump/pg_restore (used by
# `agentnet backup`/`restore`) must be at least the server's major version, so the compose file
# runs postgres:15. Moving to another Debian release means moving the server image with it.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# pg_dump/pg_restore for backups; curl for the health check and for the admin API, which
# listens on the container's loopback only (`docker compose exec NODE curl ...`).
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client curl \
 && rm -rf /var/lib/apt/lists/*

# A fixed, unprivileged uid. The mount points exist and belong to it before any volume is
# mounted, so Docker gives new named volumes the same owner.
RUN groupadd --system --gid 10001 agentnet \
 && useradd --system --uid 10001 --gid agentnet --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin agentnet \
 && mkdir -p /data /tls /ca /backups \
 && chown agentnet:agentnet /data /tls /ca /backups \
 && chmod 0700 /data /ca /backups

WORKDIR /opt/agentnet
COPY pyproject.toml README.md ./
COPY federation ./federation
COPY storage ./storage
COPY node ./node
RUN pip install . && rm -rf /opt/agentnet/build

USER agentnet
WORKDIR /data
VOLUME ["/data"]
# 8702: client listener (set AGENTNET_CLIENT_HOST=0.0.0.0 to publish it); 8443: federation (TLS).
# The admin listener (8701) binds to loopback only, by design.
EXPOSE 8702 8443

HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8702/readyz"]

ENTRYPOINT ["agentnet"]
CMD ["run", "--data-dir", "/data"]
