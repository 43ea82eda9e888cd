# One image for every HireMeter process; docker-compose.yml picks the command.
FROM python:3.11-slim AS build
WORKDIR /app
COPY pyproject.toml ./
RUN pip install --no-cache-dir --prefix=/install . grpcio-tools==1.85.1
COPY protos ./protos
RUN PYTHONPATH=/install/lib/python3.11/site-packages mkdir -p gen \
 && PYTHONPATH=/install/lib/python3.11/site-packages python -m grpc_tools.protoc -I protos \
      --python_out=gen --pyi_out=gen --grpc_python_out=gen $(find protos -name '*.proto')

FROM python:3.11-slim
WORKDIR /app
COPY --from=build /install /usr/local
COPY --from=build /app/gen ./gen
COPY services ./services
COPY gateway ./gateway
ENV PYTHONPATH=/app:/app/gen PYTHONUNBUFFERED=1
RUN useradd --system --uid 10001 hiremeter
USER hiremeter
CMD ["python", "-m", "gateway"]
