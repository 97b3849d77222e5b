"""SQLAlchemy models. Importing this package registers every table on Base.metadata."""

from app.models.base import Base
from app.models.checkpoint import Checkpoint
from app.models.dataset import Dataset
from app.models.evaluation import Evaluation
from app.models.idempotency import IdempotencyRecord
from app.models.inference import InferenceUsage
from app.models.job import Job
from app.models.metric import JobEvent, JobMetric
from app.models.openai_ft import OpenAIJobInfo
from app.models.preflight import Preflight
from app.models.reward import JobRewardUse, RewardDefinition, RewardVersion
from app.models.sample import JobSample
from app.models.secret import TenantSecret
from app.models.tenant import ApiKey, Tenant
from app.models.webhook import WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiKey",
    "Base",
    "Checkpoint",
    "Dataset",
    "Evaluation",
    "IdempotencyRecord",
    "InferenceUsage",
    "Job",
    "JobEvent",
    "JobMetric",
    "JobRewardUse",
    "JobSample",
    "OpenAIJobInfo",
    "Preflight",
    "RewardDefinition",
    "RewardVersion",
    "Tenant",
    "TenantSecret",
    "WebhookDelivery",
    "WebhookEndpoint",
]
