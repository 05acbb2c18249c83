# syntax=docker/dockerfile:1
# Images of liubai, one target each:
#
#   docker build --target api   -t liubai-api:0.1.0   .   # liubai serve, the webhook, the cluster collector
#   docker build --target git   -t liubai-git:0.1.0   .   # the API image plus git, for 'liubai ingest git'
#   docker build --target agent -t liubai-agent:0.1.0 .   # the node agent and 'liubai trace' (eBPF, root)
#
# The build stage turns this checkout and every dependency into wheels; the runtime stages install those
# wheels without a network or a compiler. bcc comes from Debian (python3-bpfcc), never from PyPI: the PyPI
# package called "bcc" is an unrelated library.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY lineage lineage
COPY collector collector
COPY ebpf ebpf
COPY api api
COPY web web
# Every wheel by file name: the runtime stages install exactly these, nothing resolved again.
RUN pip wheel --wheel-dir /wheels ".[all]" \
    && find /wheels -name '*.whl' | sort > /wheels/requirements.txt

FROM ${PYTHON_IMAGE} AS runtime
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --requirement /wheels/requirements.txt \
    && groupadd --system --gid 10001 liubai \
    && useradd --system --uid 10001 --gid liubai --home-dir /var/lib/liubai --create-home liubai
# LIUBAI_TOKENS names the token file (hashed tokens), not a secret itself.
# hadolint ignore=DL3064
ENV LIUBAI_STORE=sqlite:////var/lib/liubai/data/lineage.db \
    LIUBAI_TOKENS=/var/lib/liubai/tokens/tokens.db
WORKDIR /var/lib/liubai

FROM runtime AS api
RUN install -d -o liubai -g liubai /var/lib/liubai/data /var/lib/liubai/tokens
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["liubai"]
CMD ["serve", "--auth", "--host", "0.0.0.0", "--port", "8000"]

FROM runtime AS git
# Debian's security updates replace package versions in place, so a pinned version would stop building.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o liubai -g liubai /var/lib/liubai/data /var/lib/liubai/git-cache
USER 10001:10001
ENTRYPOINT ["liubai"]
CMD ["ingest", "git", "--help"]

# Root, privileged and in the host's pid namespace at run time: eBPF needs CAP_BPF and CAP_SYS_ADMIN, and
# bcc compiles its program against the host's kernel headers (mount /lib/modules and /usr/src read-only).
FROM runtime AS agent
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-bpfcc \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/lib/python3/dist-packages/bcc \
        "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/bcc" \
    && python -c "import bcc"
ENTRYPOINT ["liubai"]
CMD ["agent", "--help"]
