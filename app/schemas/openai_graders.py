"""OpenAI's grader shapes (openai SDK 3.x, types/graders/), as this service accepts them."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

SIMILARITY_METRICS = Literal[
    "cosine", "fuzzy_match", "bleu", "gleu", "meteor", "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l"
]


class _Grader(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=200, description="The grader's name (metrics, sub_rewards).")


class StringCheckGrader(_Grader):
    type: Literal["string_check"]
    input: str = Field(
        ..., max_length=20000, description="Template of the text checked, e.g. {{ sample.output_text }}."
    )
    reference: str = Field(..., max_length=20000, description="Template of the reference, e.g. {{ item.answer }}.")
    operation: Literal["eq", "ne", "like", "ilike"]


class TextSimilarityGrader(_Grader):
    type: Literal["text_similarity"]
    input: str = Field(..., max_length=20000)
    reference: str = Field(..., max_length=20000)
    evaluation_metric: SIMILARITY_METRICS
    pass_threshold: float | None = Field(None, description="Evals only; the RFT reward is the metric itself.")


class PythonGrader(_Grader):
    type: Literal["python"]
    source: str = Field(..., min_length=1, max_length=65536, description="Defines grade(sample, item) -> float.")
    image_tag: str | None = Field(None, max_length=200, description="Accepted and ignored: one sandbox image here.")


class ModelGraderInput(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["user", "assistant", "system", "developer"]
    content: JsonValue
    type: Literal["message"] | None = None


class SamplingParams(BaseModel):
    model_config = ConfigDict(extra="allow")

    max_completions_tokens: int | None = Field(None, ge=1)
    reasoning_effort: str | None = None
    seed: int | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = None


class ScoreModelGrader(_Grader):
    type: Literal["score_model"]
    model: str = Field(..., min_length=1)
    input: list[ModelGraderInput] = Field(..., min_length=1)
    range: list[float] | None = Field(None, min_length=2, max_length=2)
    sampling_params: SamplingParams | None = None
    pass_threshold: float | None = None


class LabelModelGrader(_Grader):
    type: Literal["label_model"]
    model: str = Field(..., min_length=1)
    input: list[ModelGraderInput] = Field(..., min_length=1)
    labels: list[str] = Field(..., min_length=1)
    passing_labels: list[str] = Field(..., min_length=1)


LeafGrader = Annotated[
    StringCheckGrader | TextSimilarityGrader | PythonGrader | ScoreModelGrader | LabelModelGrader,
    Field(discriminator="type"),
]


class MultiGrader(_Grader):
    type: Literal["multi"]
    graders: dict[str, LeafGrader] | LeafGrader = Field(
        ..., description="Sub-graders by the name calculate_output uses (a lone grader is named by its name)."
    )
    calculate_output: str = Field(..., min_length=1, description="Formula over the sub-grader names.")


Grader = Annotated[
    StringCheckGrader | TextSimilarityGrader | PythonGrader | ScoreModelGrader | LabelModelGrader | MultiGrader,
    Field(discriminator="type"),
]


class GraderValidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grader: Grader


class GraderValidateResponse(BaseModel):
    grader: dict[str, Any]


class GraderRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grader: Grader
    model_sample: str = Field(..., max_length=200000, description="The completion to grade.")
    item: dict[str, JsonValue] = Field(default_factory=dict, description="The dataset row ({{ item.* }}).")


class GraderRunErrors(BaseModel):
    formula_parse_error: bool = False
    invalid_variable_error: bool = False
    model_grader_parse_error: bool = False
    model_grader_refusal_error: bool = False
    model_grader_server_error: bool = False
    model_grader_server_error_details: str | None = None
    other_error: bool = False
    python_grader_runtime_error: bool = False
    python_grader_runtime_error_details: str | None = None
    python_grader_server_error: bool = False
    python_grader_server_error_type: str | None = None
    sample_parse_error: bool = False
    truncated_observation_error: bool = False
    unresponsive_reward_error: bool = False


class GraderRunMetadata(BaseModel):
    errors: GraderRunErrors
    execution_time: float
    name: str
    sampled_model_name: str | None = None
    scores: dict[str, Any]
    token_usage: int | None = None
    type: str


class GraderRunResponse(BaseModel):
    reward: float
    metadata: GraderRunMetadata
    sub_rewards: dict[str, Any]
    model_grader_token_usage_per_model: dict[str, Any] = Field(default_factory=dict)
