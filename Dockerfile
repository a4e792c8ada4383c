# chatli container image: a builder stage compiles the server with the same
# scripts as `scripts/run.sh`, and a slim runtime stage carries only the
# binary and its shared libraries.  No Docker engine runs where this project
# is developed, so the image is kept honest by reusing the scripts that CI
# runs (scripts/install-deps.sh, scripts/build.sh) instead of repeating their
# package lists and flags here.

FROM debian:12-slim AS builder
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN scripts/install-deps.sh build && rm -rf /var/lib/apt/lists/*
COPY . .
RUN scripts/build.sh --target chatli build

FROM debian:12-slim
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh runtime && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh \
    && useradd --uid 10001 --user-group --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin chatli \
    && mkdir -p /data && chown chatli:chatli /data
COPY --from=builder /src/build/chatli /usr/local/bin/chatli

ENV PORT=8080 DATA_DIR=/data
EXPOSE 8080
VOLUME ["/data"]
USER chatli
WORKDIR /data
# /healthz answers 200 while the process runs; readiness (/readyz) is for the
# load balancer, not for restarting the container.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${PORT}/healthz" || exit 1
# SIGTERM starts the graceful drain; give it SHUTDOWN_GRACE_S (default 10 s)
# plus a margin with `docker stop -t 15`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/chatli"]
