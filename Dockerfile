# livebot in a container. Build: docker build -t livebot .
# Run the demo:    docker run --rm livebot
# Your own rules:  docker run --rm -v "$PWD/rules:/app/rules:ro" -v "$PWD/sessions:/data:ro" \
#                    livebot replay /data/session.jsonl --rules /app/rules
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies and the package first, so editing rules does not reinstall them.
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip install .

COPY rules ./rules
COPY examples ./examples
COPY config.example.yaml ./

RUN useradd --create-home --uid 10001 livebot && mkdir -p /data && chown livebot /data
USER livebot

VOLUME ["/app/rules", "/data"]
ENTRYPOINT ["livebot"]
CMD ["replay", "examples/demo-session.jsonl", "--rules", "rules/", "--speed", "max"]
