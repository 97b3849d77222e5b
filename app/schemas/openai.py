"""OpenAI's wire format for /v1/models, /v1/chat/completions and /v1/completions (the subset served).

Requests reject keys they do not know (as OpenAI does: 400 naming the key) and knobs this service cannot
honour (tools, penalties other than 0), rather than ignoring them silently.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_N = 16


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(_Strict):
    include_usage: bool = False


class _Sampling(_Strict):
    model: str = Field(..., min_length=1, description="A base model or '<job_id>:ckpt-<step>' / '<job_id>:latest'.")
    max_tokens: int | None = Field(None, ge=1, description="Most tokens to generate (chat: default the context).")
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="0 is greedy decoding.")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=MAX_N, description="Completions per prompt.")
    stop: str | list[str] | None = Field(None, description="Up to 4 strings; generation ends before them.")
    seed: int | None = Field(
        None, ge=-(2**63), lt=2**63, description="Same seed, same model and same request: the same completion."
    )
    stream: bool = False
    stream_options: StreamOptions | None = None
    frequency_penalty: float = Field(0.0, description="Only 0 is supported.")
    presence_penalty: float = Field(0.0, description="Only 0 is supported.")
    user: str | None = None

    @field_validator("frequency_penalty", "presence_penalty")
    @classmethod
    def _zero(cls, value: float) -> float:
        if value != 0.0:
            raise ValueError("only 0 is supported by this service")
        return value

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("at most 4 non-empty stop strings")
        return value

    def stop_list(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, description="Alias of max_tokens (newer SDKs).")
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)

    @model_validator(mode="after")
    def _top_needs_logprobs(self) -> "ChatCompletionRequest":
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        return self


class CompletionRequest(_Sampling):
    prompt: str | list[str] = Field(..., description="A prompt, or a list of prompts (not streamed).")
    max_tokens: int | None = Field(16, ge=1, description="Most tokens to generate (OpenAI's default: 16).")
    logprobs: int | None = Field(None, ge=0, le=5, description="Log-probs of the chosen and the k most likely tokens.")
    echo: bool = Field(False, description="Prepend the prompt to the text (and its log-probs).")
    best_of: int | None = Field(None, ge=1, description="Only best_of == n (or unset) is supported.")
    suffix: None = Field(None, description="Not supported.")

    @model_validator(mode="after")
    def _checks(self) -> "CompletionRequest":
        if self.best_of is not None and self.best_of != self.n:
            raise ValueError("best_of other than n is not supported")
        if isinstance(self.prompt, list) and (not self.prompt or self.stream):
            raise ValueError("prompt: a list of prompts must be non-empty and is not streamed")
        return self

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class ModelObject(BaseModel):
    id: str = Field(..., description="'tiny-demo', '<job_id>:ckpt-<step>' or '<job_id>:latest'.")
    object: Literal["model"] = "model"
    created: int = Field(..., description="Unix seconds.")
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]
    has_more: bool = False


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatChoice(BaseModel):
    index: int
    message: dict[str, Any] = Field(..., description="{'role': 'assistant', 'content': ...}")
    finish_reason: Literal["stop", "length"]
    logprobs: dict[str, Any] | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: Literal["stop", "length"]
    logprobs: dict[str, Any] | None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    system_fingerprint: str | None = None


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    """Errors on the OpenAI-compatible routes (problem+json everywhere else)."""

    error: OpenAIErrorDetail


class InferenceUsageRow(BaseModel):
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int


class InferenceUsagePage(BaseModel):
    """Token counts of the tenant's inference requests, per model (a native route: problem+json errors)."""

    data: list[InferenceUsageRow]
