# One image for both the API and the worker. CPU torch by default; build with
#   --build-arg TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
# for a CUDA worker.
FROM python:3.11-slim

ARG TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 GRPO_DATA_DIR=/data

WORKDIR /srv
RUN pip install ${TORCH_SPEC}
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY workers ./workers
COPY migrations ./migrations
COPY scripts ./scripts
COPY grpo_client ./grpo_client
RUN pip install ".[s3]"

VOLUME /data
EXPOSE 8000
CMD ["sh", "-c", "grpo-admin migrate && uvicorn app.main:app --host 0.0.0.0 --port 8000 --log-config app/core/uvicorn_log.json"]
