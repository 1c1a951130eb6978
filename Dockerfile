# livebot in a container.
#   Build:           docker build -t livebot .            (add --build-arg EXTRAS=tiktok for the TikTok source)
#   Run the demo:    docker run --rm livebot
#   Run beside a stream (config, rules and data as volumes; see examples/docker-config.yaml):
#     docker run -d --name livebot -p 127.0.0.1:8787:8787 \
#       -v "$PWD/config.yaml:/config/config.yaml:ro" -v "$PWD/rules:/app/rules:ro" -v livebot-data:/data \
#       -e LIVEBOT_WEBHOOK_SECRET -e SIGN_API_KEY livebot run -c /config/config.yaml
#   Reload rules:    docker kill --signal HUP livebot      Stop cleanly: docker stop livebot (SIGTERM)
FROM python:3.11-slim

ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies and the package first, so editing rules does not reinstall them.
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN if [ -n "$EXTRAS" ]; then pip install ".[$EXTRAS]"; else pip install .; fi

COPY rules ./rules
COPY examples ./examples
COPY config.example.yaml ./

RUN useradd --create-home --uid 10001 livebot && mkdir -p /data /config && chown livebot /data
USER livebot

VOLUME ["/app/rules", "/data"]
# The control server (/healthz, /metrics, /status) and the overlay; the config must set
# http.host: 0.0.0.0 for them to be reachable from outside the container.
EXPOSE 8787
# Healthy while `livebot run`'s event loop turns (the slim image has no curl: Python asks).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os,sys,urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('LIVEBOT_HTTP_PORT', '8787'), timeout=4).status == 200 else 1)"

# SIGTERM (docker stop) drains the queue and the sinks and saves state; give it time.
STOPSIGNAL SIGTERM
ENTRYPOINT ["livebot"]
CMD ["replay", "examples/demo-session.jsonl", "--rules", "rules/", "--speed", "max"]
