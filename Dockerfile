# devscale: a small image that runs `devscale` as a non-root user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY devtrip_scale ./devtrip_scale
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin devscale
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/* && rm -rf /wheels
USER 10001:10001
ENTRYPOINT ["devscale"]
CMD ["check", "--config", "/etc/devscale/devscale.yaml"]
