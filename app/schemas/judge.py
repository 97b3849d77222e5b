"""LLM-as-judge reward fields (docs/inference.md#judge-rewards). Mixins without RewardBase, so this module
never imports app.schemas.reward: reward.py composes them with RewardBase into the union's members.

The judge is asked with a prompt template; placeholders: {{prompt}}, {{completion}}, {{row.<field>}}
(a dataset field), and in group mode {{completions}} (the group's completions, numbered from 1).
"""

import re
from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, Field, field_validator, model_validator

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")
SECRET_NAME = r"^[A-Za-z0-9_.-]{1,64}$"


class JudgeModel(BaseModel):
    """Which model judges: an OpenAI-compatible endpoint, or (no base_url) a model this service serves."""

    model_config = {"extra": "forbid"}

    model: str = Field(
        ...,
        min_length=1,
        max_length=200,
        description="The model id at base_url; without base_url a model of this service: a base model "
        "('tiny-demo') or one of your checkpoints ('<job_id>:latest', '<job_id>:ckpt-<step>').",
    )
    base_url: AnyHttpUrl | None = Field(
        None, description="API root of an OpenAI-compatible service, e.g. https://api.openai.com/v1."
    )
    api_key_secret: str | None = Field(
        None,
        pattern=SECRET_NAME,
        description="Name of one of your secrets (PUT /v1/secrets/{name}) holding the endpoint's API key; "
        "sent as a bearer token, never shown.",
    )
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature of the judge (0: greedy).")
    max_tokens: int = Field(16, ge=1, le=4096, description="Most tokens of the judge's answer.")

    @model_validator(mode="after")
    def _key_needs_endpoint(self) -> "JudgeModel":
        if self.api_key_secret is not None and self.base_url is None:
            raise ValueError("api_key_secret is for an external base_url; this service's models need no key")
        return self


class JudgeCallFields(BaseModel):
    """The judge call's template and service levels (as the http reward's)."""

    model_config = {"extra": "forbid"}

    judge: JudgeModel
    prompt: str = Field(..., min_length=1, max_length=20_000, description="Template of the judge's user message.")
    system: str | None = Field(None, max_length=20_000, description="Optional system message.")
    timeout_s: float = Field(30.0, gt=0.0, le=600.0, description="Limit per judge call.")
    retries: int = Field(2, ge=0, le=10, description="Retries after a connection error, timeout, 429 or 5xx.")
    backoff_s: float = Field(0.5, ge=0.0, le=60.0, description="First retry delay; doubles each retry.")
    backoff_max_s: float = Field(8.0, ge=0.0, le=300.0, description="Cap on one retry delay.")
    max_concurrency: int = Field(4, ge=1, le=64, description="Judge calls in flight at once for this reward.")

    def placeholders(self) -> set[str]:
        return set(PLACEHOLDER.findall(self.prompt)) | set(PLACEHOLDER.findall(self.system or ""))

    def check_template(self, needs: str) -> None:
        allowed = {"prompt", needs}
        unknown = [p for p in self.placeholders() if p not in allowed and not p.startswith("row.")]
        if unknown:
            raise ValueError(
                f"prompt: unknown placeholders {sorted(unknown)}; use {{{{prompt}}}}, "
                f"{{{{{needs}}}}} or {{{{row.<field>}}}}"
            )
        if needs not in self.placeholders():
            raise ValueError(f"prompt: the template must contain {{{{{needs}}}}}")


class JudgeScoreFields(JudgeCallFields):
    """The judge answers a number in [min_score, max_score], nothing else (strictly parsed); the reward is
    (answer - min_score) / (max_score - min_score) when normalize, else the answer. group=True (RULER-style)
    asks once per group with {{completions}} and expects a JSON array of one score per completion."""

    type: Literal["judge_score"] = "judge_score"
    min_score: float = Field(0.0, description="Lowest score the judge may answer.")
    max_score: float = Field(10.0, description="Highest score the judge may answer.")
    normalize: bool = Field(True, description="Scale the answer to [0, 1].")
    group: bool = Field(False, description="Score a prompt's whole group in one call, relative to each other.")

    @model_validator(mode="after")
    def _checks(self) -> "JudgeScoreFields":
        if not self.min_score < self.max_score:
            raise ValueError("min_score must be below max_score")
        self.check_template("completions" if self.group else "completion")
        return self


class JudgeLabelFields(JudgeCallFields):
    """The judge answers exactly one of `labels` (case and surrounding whitespace ignored); a passing
    label scores 1, any other label 0, anything else is an error."""

    type: Literal["judge_label"] = "judge_label"
    labels: list[str] = Field(..., min_length=2, max_length=20, description="The labels the judge picks from.")
    passing: list[str] = Field(..., min_length=1, description="Labels that score 1.")

    @field_validator("labels")
    @classmethod
    def _distinct(cls, labels: list[str]) -> list[str]:
        folded = [label.strip().casefold() for label in labels]
        if any(not f for f in folded) or len(set(folded)) != len(folded):
            raise ValueError("labels must be non-empty and distinct (ignoring case)")
        return labels

    @model_validator(mode="after")
    def _checks(self) -> "JudgeLabelFields":
        known = {label.strip().casefold() for label in self.labels}
        if any(p.strip().casefold() not in known for p in self.passing):
            raise ValueError("passing: every passing label must be one of labels")
        self.check_template("completion")
        return self
