"""Where a job's judge rewards send their calls: this service's inference (a base model or one of the
tenant's checkpoints, with the same tenancy as the API's model ids) or an external OpenAI-compatible
endpoint with the API key from the tenant's secret. Resolved once when the job's reward function is
built, so '<job>:latest' is pinned to the checkpoint that was latest at that moment."""

import uuid
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.core.errors import ProblemError
from app.models import Tenant
from app.schemas.judge import JudgeModel
from app.services.inference import find_model, record_usage
from app.services.secrets import read_secret
from workers.rewards.errors import RewardConfigError
from workers.rewards.judge import JudgeResolver, JudgeTarget


def judge_resolver(settings: Settings, sessions: sessionmaker[Session], tenant_id: uuid.UUID) -> JudgeResolver:
    def record(model: str) -> Callable[[int, int], None]:
        """A service judge's tokens are the tenant's inference usage, as if asked through the API."""

        def on_usage(prompt_tokens: int, completion_tokens: int) -> None:
            with sessions() as session:
                record_usage(
                    session=session,
                    tenant_id=tenant_id,
                    model=model,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                )

        return on_usage

    def resolve(judge: JudgeModel) -> JudgeTarget:
        with sessions() as session:
            if judge.base_url is None:
                tenant = session.get(Tenant, tenant_id)
                try:
                    _, spec = find_model(session=session, tenant=tenant, settings=settings, model_id=judge.model)
                except ProblemError:
                    raise RewardConfigError(
                        f"judge model {judge.model!r} is neither a base model of this service nor one of your "
                        "checkpoints",
                        param="judge.model",
                    ) from None
                token = settings.inference_token.get_secret_value() if settings.inference_token else None
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                return JudgeTarget(
                    "service", settings.inference_url.rstrip("/"), judge.model, headers, spec, record(judge.model)
                )
            headers = {}
            if judge.api_key_secret is not None:
                key = read_secret(
                    session=session,
                    tenant_id=tenant_id,
                    name=judge.api_key_secret,
                    server_secret=settings.secret_key.get_secret_value(),
                )
                if key is None:
                    raise RewardConfigError(
                        f"judge.api_key_secret: you have no secret named {judge.api_key_secret!r}",
                        param="judge.api_key_secret",
                    )
                headers["Authorization"] = f"Bearer {key}"
            return JudgeTarget("openai", str(judge.base_url).rstrip("/"), judge.model, headers)

    return resolve
