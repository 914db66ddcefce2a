# The tokenpulse image: one image for the mock farm, the prober, the alert sink and Locust (master and
# workers). docker-compose.yml builds it; `docker build -t tokenpulse .` works on its own.
#
# Two stages: the first builds the wheel, the second installs it (and its dependencies) on a clean
# slim Python, then drops root.

FROM python:3.11.13-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11.13-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels \
    && groupadd --system --gid 10001 tokenpulse \
    && useradd --system --uid 10001 --gid tokenpulse --home-dir /var/lib/tokenpulse --create-home \
       --shell /usr/sbin/nologin tokenpulse
WORKDIR /app
COPY locustfiles/ ./locustfiles/
COPY examples/ ./examples/
USER 10001:10001
# mock, prober (/metrics and status page), alert sink, Locust web UI, Locust exporter
EXPOSE 8080 9464 9095 8089 9465
CMD ["tokenpulse", "--help"]
