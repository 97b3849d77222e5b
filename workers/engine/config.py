"""GRPOConfig: every knob of one training run, documented once.

The hyperparameter fields mirror `app/schemas/grpo.py` (GRPOHyperparameters) name for name, type for
type and default for default, so `GRPOConfig(**hp.model_dump(), model_source=...)` works; their meaning
is documented there, next to the API field, and only summarised here. Their admissible values and the
rules between them are data in knobs.py; tests/engine/test_knob_drift.py fails when either side
drifts. The remaining fields (model, data, checkpoints, evaluation, logging, device) are engine-side and
documented here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workers.engine.knobs import check


@dataclass(frozen=True)
class LoraSettings:
    """LoRA adapters through peft; only the adapters train and only they are checkpointed."""

    r: int = 16  # adapter rank: capacity of the update; 8-64 is usual
    alpha: int = 32  # scaling numerator (update scaled by alpha / r); 2 * r is a common choice
    dropout: float = 0.0  # dropout on the adapter input; 0 keeps rollouts and training on the same policy
    # Linear layers that get adapters; the attention and MLP projections of Llama/Qwen-style models.
    target_modules: tuple[str, ...] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )


@dataclass
class GRPOConfig:
    # --- model and data (engine-side) -------------------------------------------------------------
    model_source: str = "tiny-demo"  # 'tiny-demo', a save_pretrained directory, or a hub id
    model_revision: str | None = None  # hub revision (branch, tag, commit); ignored for local sources
    model_cache_dir: Path | None = None  # where 'tiny-demo' is built and cached; None: ~/.cache/grpo-service
    lora: LoraSettings | None = None  # None trains all weights; set to train LoRA adapters only
    prompt_field: str = "prompt"  # row field holding the prompt text

    # --- batch shape (see app/schemas/grpo.py for each knob's reason) -----------------------------
    group_size: int = 8  # completions per prompt (G)
    prompts_per_step: int = 4  # prompts per generation batch (P); a step samples P * G completions
    max_steps: int = 200  # steps; a step = one generation batch + num_iterations optimiser updates
    micro_batch_size: int | None = None  # completions per forward/backward chunk; None = whole step
    num_iterations: int = 1  # passes over each generation batch (mu)
    steps_per_generation: int = 1  # optimiser mini-batches per generation batch (TRL's knob); 1 = one update

    # --- sampling --------------------------------------------------------------------------------
    max_new_tokens: int = 256  # completion length cap
    max_prompt_tokens: int | None = 512  # prompts are left-truncated to this many tokens
    temperature: float = 1.0
    top_p: float = 1.0  # nucleus mass; 1.0 disables
    top_k: int = 0  # 0 disables
    repetition_penalty: float = 1.0  # CTRL-style; 1.0 disables
    min_p: float = 0.0  # drop tokens below min_p * the top token's probability; 0.0 disables
    stop: list[str] = field(default_factory=list)  # the text ends right after the first stop string

    # --- advantages ------------------------------------------------------------------------------
    scale_rewards: str = "group"  # 'group' | 'batch' | 'none'
    reward_std_epsilon: float = 1e-4  # added to the std so tied groups give advantage 0
    advantage_baseline: str = "mean"  # 'mean' (GRPO) | 'leave_one_out' (RLOO)

    # --- loss ------------------------------------------------------------------------------------
    loss_type: str = "dapo"  # 'grpo' | 'bnpo' | 'dr_grpo' | 'dapo'
    epsilon: float = 0.2  # lower clip: ratio >= 1 - epsilon
    epsilon_high: float | None = None  # upper clip; None uses epsilon
    delta: float | None = None  # two-sided clip cap on the unclipped ratio; None disables
    importance_sampling_level: str = "token"  # 'token' (GRPO) | 'sequence' (GSPO)
    mask_truncated_completions: bool = False  # drop completions that never finished from the loss
    # Sampler/trainer mismatch correction: 'off' | '{token,sequence}_{truncate,mask}' (TIS / masked IS).
    sampling_correction: str = "off"
    sampling_correction_cap: float = 3.0  # truncate: weight capped here; mask: weights above it zeroed

    # --- KL to a reference model -----------------------------------------------------------------
    beta: float = 0.0  # k3 KL coefficient; 0 loads no reference model
    kl_bias_correction: bool = False  # k3 term times the importance ratio (TRL's use_bias_correction_kl)
    ref_model_sync_steps: int | None = None  # mix the policy into the reference every this many steps
    ref_model_mixup_alpha: float = 0.6  # ref = alpha * policy + (1 - alpha) * ref

    # --- dynamic sampling (DAPO) -----------------------------------------------------------------
    dynamic_sampling: bool = False  # drop tied groups and resample to refill the batch
    max_resample_rounds: int = 3  # cap on extra generation rounds per step

    # --- optimiser -------------------------------------------------------------------------------
    learning_rate: float = 1e-6
    lr_scheduler: str = "linear"  # 'constant' | 'linear' | 'cosine' (after warm-up)
    warmup_steps: int = 0  # optimiser updates of linear warm-up
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float | None = 1.0  # None disables clipping

    # --- execution -------------------------------------------------------------------------------
    precision: str = "auto"  # 'auto' = bf16 on GPU, fp32 on CPU
    gradient_checkpointing: bool = False
    seed: int = 0
    num_threads: int | None = None  # torch.set_num_threads for the run; None keeps torch's default
    fast_paths: bool = True  # rollout/scoring kernels (workers/engine/kernels/) where exact; False: plain transformers
    device: str = "auto"  # 'auto' = cuda when available, else cpu; or any torch device string

    # --- checkpoints (engine-side) ---------------------------------------------------------------
    checkpoint_every: int = 50  # save every this many steps, and always after the last step
    keep_last: int = 2  # keep this many most recent checkpoints; older ones are deleted

    # --- evaluation on held-out rows (engine-side; only when train() gets eval_rows) -------------
    eval_every: int | None = None  # evaluate every this many steps (and before step 1); None: only at the end
    eval_samples_per_prompt: int = 4  # n completions per eval prompt; pass@k needs k <= n
    eval_greedy: bool = False  # greedy decoding (one distinct sample per prompt); False samples like training
    eval_max_new_tokens: int | None = None  # None uses max_new_tokens
    eval_max_prompts: int | None = None  # evaluate at most this many eval rows (the first ones); None: all
    # A sample counts as correct when its total reward >= this; pass@k and accuracy use it (eval.success_threshold).
    eval_success_threshold: float = 1.0

    # --- logging (engine-side) -------------------------------------------------------------------
    log_samples_per_step: int = 4  # completions per step copied into StepReport.samples (first groups first)

    def __post_init__(self) -> None:
        check(self)  # choices, ranges and cross-field rules: knobs.py, one table kept equal to the API's
        self.stop = list(self.stop)
        if self.model_cache_dir is not None:
            self.model_cache_dir = Path(self.model_cache_dir)

    @property
    def optimizer_updates(self) -> int:
        """Optimiser updates in the whole run (what the learning-rate schedule counts)."""
        return self.max_steps * self.num_iterations * self.steps_per_generation

    @property
    def clip_high(self) -> float:
        """Upper clip range actually used."""
        return self.epsilon if self.epsilon_high is None else self.epsilon_high

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in checkpoints so a resume can check it continues the same run)."""
        data = asdict(self)
        data["model_cache_dir"] = None if self.model_cache_dir is None else str(self.model_cache_dir)
        if self.lora is not None:
            data["lora"]["target_modules"] = list(self.lora.target_modules)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GRPOConfig:
        data = dict(data)
        if "eval_correct_threshold" in data:  # the name in checkpoints written before it matched the API's
            data["eval_success_threshold"] = data.pop("eval_correct_threshold")
        if data.get("lora") is not None:
            lora = dict(data["lora"])
            lora["target_modules"] = tuple(lora["target_modules"])
            data["lora"] = LoraSettings(**lora)
        return cls(**data)
