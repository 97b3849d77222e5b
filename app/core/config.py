"""Service settings, read once from the environment (and an optional .env file).

The embedded default needs no servers: SQLite for data and kombu's SQLAlchemy transport on SQLite as
the Celery broker, all under `GRPO_DATA_DIR`. Production sets DATABASE_URL (PostgreSQL) and
CELERY_BROKER_URL (Redis).
"""

from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.schemas.resources import WorkerClass

DEFAULT_SECRET = "dev-insecure-secret-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    data_dir: Path = Field(
        Path(".grpo"),
        validation_alias=AliasChoices("GRPO_DATA_DIR", "data_dir"),
        description="Where the embedded database, broker, checkpoints and the tiny demo model live.",
    )
    database_url_override: str | None = Field(
        None,
        validation_alias=AliasChoices("DATABASE_URL", "database_url"),
        description="SQLAlchemy URL; default sqlite:///<data_dir>/grpo.db. Production: postgresql+psycopg://...",
    )
    broker_url_override: str | None = Field(
        None,
        validation_alias=AliasChoices("CELERY_BROKER_URL", "broker_url"),
        description="Celery broker; default sqla+sqlite:///<data_dir>/broker.db. Production: redis://...",
    )
    storage_url_override: str | None = Field(
        None,
        validation_alias=AliasChoices("GRPO_STORAGE_URL", "storage_url"),
        description="Where checkpoints and datasets are stored: file:///path (default <data_dir>/storage) or "
        "s3://bucket/prefix (credentials from the usual AWS environment variables).",
    )
    s3_endpoint_url: str | None = Field(
        None,
        validation_alias=AliasChoices("GRPO_S3_ENDPOINT_URL", "s3_endpoint_url"),
        description="Endpoint of an S3-compatible store other than AWS (MinIO, Ceph...).",
    )
    max_dataset_bytes: int = Field(
        512 * 1024 * 1024, validation_alias=AliasChoices("GRPO_MAX_DATASET_BYTES", "max_dataset_bytes")
    )
    secret_key: SecretStr = Field(
        SecretStr(DEFAULT_SECRET),
        validation_alias=AliasChoices("GRPO_SECRET_KEY", "secret_key"),
        description="Server secret mixed into API-key hashes. Must be set to a long random value in production.",
    )
    environment: str = Field("development", validation_alias=AliasChoices("GRPO_ENV", "environment"))
    model_roots: list[Path] = Field(
        default_factory=list,
        validation_alias=AliasChoices("GRPO_MODEL_ROOTS", "model_roots"),
        description="Directories under which jobs may name a local model path (JSON list). Empty: none allowed.",
    )
    max_request_bytes: int = Field(
        16 * 1024 * 1024, validation_alias=AliasChoices("GRPO_MAX_REQUEST_BYTES", "max_request_bytes")
    )
    max_dataset_rows: int = Field(100_000, validation_alias=AliasChoices("GRPO_MAX_DATASET_ROWS", "max_dataset_rows"))
    # One JSONL line of an upload (a row) may be at most this long: the parser holds a line in memory.
    max_dataset_row_bytes: int = Field(
        1024 * 1024, ge=1, validation_alias=AliasChoices("GRPO_MAX_DATASET_ROW_BYTES", "max_dataset_row_bytes")
    )
    max_steps_limit: int = Field(100_000, validation_alias=AliasChoices("GRPO_MAX_STEPS", "max_steps_limit"))
    max_group_size: int = Field(256, validation_alias=AliasChoices("GRPO_MAX_GROUP_SIZE", "max_group_size"))
    max_new_tokens_limit: int = Field(
        8192, validation_alias=AliasChoices("GRPO_MAX_NEW_TOKENS", "max_new_tokens_limit")
    )
    heartbeat_interval_s: float = Field(
        10.0,
        validation_alias=AliasChoices("GRPO_HEARTBEAT_INTERVAL_S", "heartbeat_interval_s"),
        description="How often a running job's worker writes its heartbeat.",
    )
    heartbeat_timeout_s: float = Field(
        120.0,
        validation_alias=AliasChoices("GRPO_HEARTBEAT_TIMEOUT_S", "heartbeat_timeout_s"),
        description="A running job whose heartbeat is older than this is considered orphaned and requeued.",
    )
    default_max_running_jobs: int = Field(
        2,
        ge=1,
        validation_alias=AliasChoices("GRPO_DEFAULT_MAX_RUNNING_JOBS", "default_max_running_jobs"),
        description="Running-job limit given to new tenants (change one tenant with `grpo-admin set-limits`).",
    )
    default_max_queued_jobs: int = Field(
        20,
        ge=1,
        validation_alias=AliasChoices("GRPO_DEFAULT_MAX_QUEUED_JOBS", "default_max_queued_jobs"),
        description="Queued-job limit given to new tenants; a submit over it is a 429.",
    )
    quota_retry_after_s: int = Field(
        30,
        ge=1,
        validation_alias=AliasChoices("GRPO_QUOTA_RETRY_AFTER_S", "quota_retry_after_s"),
        description="Retry-After (seconds) sent with a 429 for the queued-job quota.",
    )
    preflight_wait_s: float = Field(
        120.0,
        gt=0,
        validation_alias=AliasChoices("GRPO_PREFLIGHT_WAIT_S", "preflight_wait_s"),
        description="How long POST /v1/preflight waits for a worker's answer before a 503.",
    )
    preflight_pickup_s: float = Field(
        15.0,
        gt=0,
        validation_alias=AliasChoices("GRPO_PREFLIGHT_PICKUP_S", "preflight_pickup_s"),
        description="A preflight no worker has taken within this long is answered 503 (all busy or none running).",
    )
    preflight_time_limit_s: int = Field(
        600,
        ge=10,
        validation_alias=AliasChoices("GRPO_PREFLIGHT_TIME_LIMIT_S", "preflight_time_limit_s"),
        description="A preflight task running longer than this on a worker is stopped (its own limit, not a job's).",
    )
    webhook_allow_private: bool = Field(
        False,
        validation_alias=AliasChoices("GRPO_WEBHOOK_ALLOW_PRIVATE", "webhook_allow_private"),
        description="Allow webhook URLs on private, loopback or link-local addresses (off: SSRF protection).",
    )
    webhook_backoff_s: float = Field(
        10.0,
        gt=0,
        validation_alias=AliasChoices("GRPO_WEBHOOK_BACKOFF_S", "webhook_backoff_s"),
        description="First retry delay of a failed webhook delivery; doubles per attempt, at most an hour.",
    )
    webhook_max_attempts: int = Field(
        10,
        ge=1,
        validation_alias=AliasChoices("GRPO_WEBHOOK_MAX_ATTEMPTS", "webhook_max_attempts"),
        description="Attempts before a webhook delivery is marked failed (it can be redelivered by hand).",
    )
    log_format: str = Field(
        "json",
        pattern="^(json|text|none)$",
        validation_alias=AliasChoices("GRPO_LOG_FORMAT", "log_format"),
        description="'json': one JSON object per line with request_id / job_id; 'text' for people; "
        "'none': leave logging alone (set up by whoever embeds the app).",
    )
    log_level: str = Field("INFO", validation_alias=AliasChoices("GRPO_LOG_LEVEL", "log_level"))
    access_log: bool = Field(
        True,
        validation_alias=AliasChoices("GRPO_ACCESS_LOG", "access_log"),
        description="Log one line per request (method, route, status, duration, request_id, job_id).",
    )
    metrics_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("GRPO_METRICS_TOKEN", "metrics_token"),
        description="When set, GET /metrics needs `Authorization: Bearer <token>` (the Prometheus scrape "
        "config's bearer token). Required when GRPO_ENV=production; unset (development): /metrics is open. It "
        "shows aggregates and the ids and step times of running jobs, never a tenant's names or data.",
    )
    max_job_attempts: int = Field(
        3,
        validation_alias=AliasChoices("GRPO_MAX_JOB_ATTEMPTS", "max_job_attempts"),
        description="Times a job is started (first run plus requeues after lost workers) before it is failed.",
    )
    reward_check_timeout_s: float = Field(
        60.0,
        gt=0,
        validation_alias=AliasChoices("GRPO_REWARD_CHECK_TIMEOUT_S", "reward_check_timeout_s"),
        description="How long the API waits for a reward worker to test a reward before answering 503.",
    )

    # Inference (docs/inference.md): the API proxies /v1/chat/completions and /v1/completions to a worker.
    inference_url: str = Field(
        "http://127.0.0.1:8100",
        validation_alias=AliasChoices("GRPO_INFERENCE_URL", "inference_url"),
        description="Base URL of the inference worker (`python -m workers.inference`) the API proxies to.",
    )
    inference_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("GRPO_INFERENCE_TOKEN", "inference_token"),
        description="When set, the API sends it and the inference worker requires it (a shared secret).",
    )
    inference_base_models: list[str] = Field(
        default_factory=lambda: ["tiny-demo"],
        validation_alias=AliasChoices("GRPO_INFERENCE_BASE_MODELS", "inference_base_models"),
        description="Base models every tenant may use by name (JSON list): 'tiny-demo' or local model "
        "directories under GRPO_MODEL_ROOTS.",
    )
    inference_timeout_s: float = Field(
        120.0,
        gt=0,
        validation_alias=AliasChoices("GRPO_INFERENCE_TIMEOUT_S", "inference_timeout_s"),
        description="How long the API waits for the inference worker (per request; per chunk when streaming).",
    )
    inference_requests_per_minute: int = Field(
        600,
        ge=1,
        validation_alias=AliasChoices("GRPO_INFERENCE_RPM", "inference_requests_per_minute"),
        description="Per-tenant inference request rate (a token bucket in each API process); over it: 429.",
    )
    inference_max_concurrent: int = Field(
        16,
        ge=1,
        validation_alias=AliasChoices("GRPO_INFERENCE_MAX_CONCURRENT", "inference_max_concurrent"),
        description="Per-tenant inference requests in flight at once (per API process); over it: 429.",
    )
    inference_memory_mb: float = Field(
        4096,
        gt=0,
        validation_alias=AliasChoices("GRPO_INFERENCE_MEMORY_MB", "inference_memory_mb"),
        description="Inference worker: memory for cached models; least recently used ones are evicted.",
    )
    inference_max_batch_rows: int = Field(
        32,
        ge=1,
        validation_alias=AliasChoices("GRPO_INFERENCE_MAX_BATCH", "inference_max_batch_rows"),
        description="Inference worker: most completion rows decoded together in one batch.",
    )
    inference_batch_window_ms: float = Field(
        5.0,
        ge=0,
        validation_alias=AliasChoices("GRPO_INFERENCE_BATCH_WINDOW_MS", "inference_batch_window_ms"),
        description="Inference worker: how long the first request of a batch waits for others to join.",
    )

    worker_classes: list[WorkerClass] = Field(
        default_factory=list,
        validation_alias=AliasChoices("GRPO_WORKER_CLASSES", "worker_classes"),
        description="The fleet's worker classes (JSON list of {name, accelerator, devices, memory_gb}), cheapest "
        "first: a job goes to the queue grpo.<name> of the first class that fits its resources, and a job no class "
        "fits is rejected (422). Empty (default): every job goes to the 'grpo' queue and each worker checks it fits.",
    )
    worker_class: str | None = Field(
        None,
        validation_alias=AliasChoices("GRPO_WORKER_CLASS", "worker_class"),
        description="On a worker: its class in worker_classes (it consumes that class's queue and those of the "
        "classes it covers). Unset: the worker offers what it detects (CUDA devices, else the CPU's cores).",
    )

    @model_validator(mode="after")
    def _worker_class_is_declared(self) -> "Settings":
        names = [c.name for c in self.worker_classes]
        if len(set(names)) != len(names):
            raise ValueError(f"GRPO_WORKER_CLASSES: class names must be unique, got {names}")
        if self.worker_class is not None and self.worker_class not in names:
            raise ValueError(f"GRPO_WORKER_CLASS={self.worker_class!r} is not one of GRPO_WORKER_CLASSES {names}")
        return self

    @model_validator(mode="after")
    def _no_default_secret_in_production(self) -> "Settings":
        if self.environment == "production" and self.secret_key.get_secret_value() == DEFAULT_SECRET:
            raise ValueError("GRPO_SECRET_KEY must be set to a long random value when GRPO_ENV=production")
        if self.environment == "production" and self.metrics_token is None:
            # /metrics labels running jobs by id; an open endpoint would hand ids of every tenant to anyone.
            raise ValueError("GRPO_METRICS_TOKEN must be set when GRPO_ENV=production (GET /metrics needs it)")
        return self

    @cached_property
    def database_url(self) -> str:
        return self.database_url_override or f"sqlite:///{self.data_dir.resolve() / 'grpo.db'}"

    @cached_property
    def broker_url(self) -> str:
        return self.broker_url_override or f"sqla+sqlite:///{self.data_dir.resolve() / 'broker.db'}"

    @cached_property
    def storage_url(self) -> str:
        return self.storage_url_override or f"file://{self.data_dir.resolve() / 'storage'}"

    @property
    def takeover_after_s(self) -> float:
        """A redelivered task takes over a running job whose heartbeat is older than this. The heartbeat is
        written by its own thread every interval, whatever a step costs, so three intervals means two beats
        in a row were missed: not a slow step. Never later than the watchdog's timeout."""
        return min(self.heartbeat_timeout_s, 3 * self.heartbeat_interval_s)

    @property
    def model_cache_dir(self) -> Path:
        """Worker-local models: tiny-demo as built, checkpoints unpacked for inference (workers/spec.py
        builds jobs' model cache in the same place from the data dir)."""
        return self.data_dir.resolve() / "models"

    @property
    def work_dir(self) -> Path:
        """Worker-local scratch: a running job's checkpoints before they are stored, resume copies."""
        return self.data_dir.resolve() / "work"


settings = Settings()
