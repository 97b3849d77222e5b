"""GRPO hyperparameters of a job spec.

Every knob is documented once, here, with its default and why. The engine's `GRPOConfig`
(workers/engine/config.py) mirrors these names one to one; defaults follow TRL's GRPOConfig
unless a comment says otherwise, so a user moving from TRL gets the same algorithm.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

ScaleRewards = Literal["group", "batch", "none"]
LossType = Literal["grpo", "bnpo", "dr_grpo", "dapo"]
ImportanceSamplingLevel = Literal["token", "sequence"]
AdvantageBaseline = Literal["mean", "leave_one_out"]
SamplingCorrection = Literal["off", "token_truncate", "token_mask", "sequence_truncate", "sequence_mask"]
LrScheduler = Literal["constant", "linear", "cosine"]
Precision = Literal["auto", "fp32", "bf16"]


class GRPOHyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # --- batch shape -------------------------------------------------------------------------
    group_size: int = Field(
        8,
        ge=2,
        le=1024,
        description="Completions sampled per prompt (G). Advantages are computed inside each group, "
        "so at least 2 are needed; TRL's num_generations default is 8.",
    )
    prompts_per_step: int = Field(
        4,
        ge=1,
        le=4096,
        description="Prompts per generation batch. One step samples prompts_per_step * group_size completions.",
    )
    max_steps: int = Field(
        200,
        ge=1,
        description="Number of steps. A step is one generation batch followed by num_iterations * steps_per_generation "
        "optimiser updates.",
    )
    micro_batch_size: int | None = Field(
        None,
        ge=1,
        description="Completions per forward/backward chunk (gradient accumulation inside a step). "
        "None puts the whole step in one chunk. Results do not depend on it, only memory does, except with "
        "loss_type 'bnpo', which is defined per chunk (as TRL's per-device batch).",
    )
    num_iterations: int = Field(
        1,
        ge=1,
        le=64,
        description="Passes over each generation batch (mu in the GRPO paper), each pass one optimiser update per "
        "mini-batch (steps_per_generation). With 1 pass and 1 mini-batch the old policy is the current one, so the "
        "old log-prob forward pass is skipped.",
    )
    steps_per_generation: int = Field(
        1,
        ge=1,
        le=64,
        description="Optimiser mini-batches per generation batch (TRL's steps_per_generation): the step's "
        "completions (in group order) are split into this many contiguous, nearly equal mini-batches, each "
        "with its own loss (normalised over its own tokens / sequences) and optimiser update, so one generation "
        "feeds several updates. Advantages are computed over the whole generation batch first. Above 1 the "
        "mini-batches after the first are off-policy, so the old log-probs are computed once before the first "
        "update (one extra no-grad forward pass) and the clipped ratio corrects for it. 1 (default): one update "
        "per generation, the cheapest and most on-policy choice.",
    )

    # --- sampling ----------------------------------------------------------------------------
    max_new_tokens: int = Field(
        256,
        ge=1,
        description="Maximum completion length in tokens (TRL: max_completion_length, default 512 in TRL 1.16; "
        "256 here keeps CPU steps short). Also the constant normaliser of loss_type 'dr_grpo'.",
    )
    max_prompt_tokens: int | None = Field(
        512,
        ge=1,
        description="Prompts longer than this are left-truncated, so a stray long row cannot blow up memory "
        "(TRL 1.16 has no such limit). None keeps them whole.",
    )
    temperature: float = Field(
        1.0,
        gt=0.0,
        le=10.0,
        description="Sampling temperature; 1.0 samples the policy as is. The loss scores softmax(logits / "
        "temperature) too (as TRL), so the temperature alone keeps the update on-policy.",
    )
    top_p: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="Nucleus sampling mass; 1.0 disables it. Below 1 the tokens come from a truncated distribution "
        "while the loss scores the full one: the update is off-policy unless sampling_correction is on.",
    )
    top_k: int = Field(
        0,
        ge=0,
        description="Keep only the k most likely tokens; 0 disables it. Off-policy like top_p: see "
        "sampling_correction.",
    )
    repetition_penalty: float = Field(
        1.0,
        gt=0.0,
        le=10.0,
        description="CTRL-style penalty on tokens already in the sequence; 1.0 disables it. Like top_p, top_k and "
        "min_p, it makes the sampler's distribution differ from the policy the loss scores (softmax(logits / "
        "temperature)), so the update is off-policy by that much unless sampling_correction is on (the "
        "sampling/logp_diff_* metrics show how much).",
    )
    min_p: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Drop tokens whose probability is below min_p times the most likely token's (as transformers' "
        "min_p; 0.05-0.1 is usual). 0.0 (default) disables it. Off-policy like top_p, see repetition_penalty.",
    )
    stop: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list,
        max_length=16,
        description="Stop strings: a completion ends right after the first one it produces (the stop string is kept) "
        "and counts as finished, not truncated: the reward sees the text up to and including the stop string. The "
        "token that completed it may carry more characters; it is kept whole in the trained tokens (the loss mask "
        "covers every sampled token up to and including it), only the text is cut. None by default: completions "
        "end at EOS or max_new_tokens.",
    )

    # --- advantages --------------------------------------------------------------------------
    scale_rewards: ScaleRewards = Field(
        "group",
        description="How centred rewards are scaled: 'group' divides by the group's std (GRPO), 'batch' by the "
        "whole batch's std, 'none' does not scale (Dr. GRPO, avoids the question-difficulty bias).",
    )
    reward_std_epsilon: float = Field(
        1e-4,
        gt=0.0,
        description="Added to the std before dividing, so tied groups give 0, not NaN (TRL: fixed at 1e-4).",
    )
    advantage_baseline: AdvantageBaseline = Field(
        "mean",
        description="What a completion's reward is compared with. 'mean' (default, GRPO and TRL): the mean of its "
        "group, itself included. 'leave_one_out' (RLOO): the mean of the other completions of its group, an unbiased "
        "baseline. Within a group it is 'mean' times G / (G - 1) (n / (n - 1) for n scorable completions): the same "
        "direction, a larger step, as in RLOO runs. A completion "
        "whose reward is NaN or infinite (unscorable) is left out of every baseline and std and gets advantage 0.",
    )

    # --- loss --------------------------------------------------------------------------------
    loss_type: LossType = Field(
        "dapo",
        description="Loss aggregation. 'grpo': mean over each sequence's tokens, then over sequences (length bias). "
        "'bnpo': mean over the tokens of the (micro) batch. 'dr_grpo': sum over tokens divided by "
        "batch_size * max_new_tokens. 'dapo' (default, as in TRL): mean over all tokens of the whole step.",
    )
    epsilon: float = Field(
        0.2,
        ge=0.0,
        le=10.0,
        description="Clip range: the ratio is clipped to [1 - epsilon, 1 + epsilon_high] (PPO / GRPO, TRL: 0.2).",
    )
    epsilon_high: float | None = Field(
        None,
        ge=0.0,
        le=10.0,
        description="Upper clip range ('clip-higher', DAPO recommends 0.28). None uses epsilon.",
    )
    delta: float | None = Field(
        None,
        gt=1.0,
        description="Two-sided clipping: the unclipped ratio is also capped at delta, which bounds the loss of "
        "negative-advantage tokens whose ratio has grown large (INTELLECT-2 uses 4; keep it above 1 + epsilon_high). "
        "None (default) disables it.",
    )
    importance_sampling_level: ImportanceSamplingLevel = Field(
        "token",
        description="'token' (default): one ratio per token (GRPO). 'sequence': the geometric mean ratio of the "
        "sequence applied to all its tokens (GSPO, which pairs it with loss_type 'grpo').",
    )
    mask_truncated_completions: bool = Field(
        False, description="Exclude completions that hit max_new_tokens without finishing from the loss (DAPO)."
    )
    sampling_correction: SamplingCorrection = Field(
        "off",
        description="Importance-sampling correction for the sampler/trainer mismatch: each token's loss is weighted "
        "by w = p_trainer / p_sampler, the probability the policy being trained gives the token over the one the "
        "sampler drew it with (after top_p, top_k, min_p, repetition_penalty). 'token_truncate' caps each token's "
        "w at sampling_correction_cap (truncated IS, TIS); 'token_mask' zeroes tokens whose w is above it (masked "
        "IS); 'sequence_*' do the same with the product of the sequence's token weights. 'off' (default): no "
        "weight, the cheapest and exact when sampling is plain (temperature only) in fp32. Turn it on with top_p, "
        "top_k, min_p or a repetition penalty, bf16 sampling, or a separate inference engine; the "
        "sampling/logp_diff_* metrics show the mismatch it corrects (TRL: vllm_importance_sampling_correction).",
    )
    sampling_correction_cap: float = Field(
        3.0,
        ge=1.0,
        le=1000.0,
        description="The threshold of sampling_correction: the truncation cap or the masking threshold on w "
        "(TRL's vllm_importance_sampling_clip_max, default 3.0).",
    )

    # --- KL to a reference model ---------------------------------------------------------------
    beta: float = Field(
        0.0,
        ge=0.0,
        description="KL coefficient (k3 estimator). 0.0 loads no reference model at all (saves memory and a forward "
        "pass); DeepSeek-R1 uses 0.001, the original GRPO paper 0.04. The k3 term enters the loss as in the GRPO "
        "paper, i.e. TRL with use_bias_correction_kl=False (TRL 1.16's default multiplies it by the ratio: see "
        "kl_bias_correction).",
    )
    kl_bias_correction: bool = Field(
        False,
        description="Multiply the per-token k3 term by the importance ratio, so its gradient is the unbiased "
        "reverse-KL gradient (DeepSeek-V3.2). Changes the gradient, not the loss value, even on-policy. False "
        "(default) is the GRPO paper's plain k3 term; True matches TRL 1.16's default use_bias_correction_kl=True.",
    )
    ref_model_sync_steps: int | None = Field(
        None,
        ge=1,
        description="Every this many steps, mix the policy into the reference model "
        "(ref = alpha * policy + (1 - alpha) * ref, TR-DPO style). None (default) keeps the reference frozen. "
        "Needs beta > 0 and full fine-tuning. TRL counts it in optimiser updates (num_iterations per step here).",
    )
    ref_model_mixup_alpha: float = Field(0.6, ge=0.0, le=1.0, description="alpha of the reference sync above.")

    # --- dynamic sampling (DAPO) -----------------------------------------------------------------
    dynamic_sampling: bool = Field(
        False,
        description="Drop groups whose rewards all tie (they carry no signal) and sample more prompts until the "
        "batch is full again, at most max_resample_rounds extra rounds (DAPO; TRL has no equivalent). Off by "
        "default: it costs extra generation.",
    )
    max_resample_rounds: int = Field(
        3, ge=0, le=64, description="Cap on extra generation rounds per step when dynamic_sampling is on."
    )

    # --- optimiser -----------------------------------------------------------------------------
    learning_rate: float = Field(1e-6, gt=0.0, le=1.0, description="AdamW peak learning rate (TRL: 1e-6).")
    lr_scheduler: LrScheduler = Field(
        "linear",
        description="Decay after warm-up: 'linear' to 0 at the last step (TRL's default), 'cosine', or 'constant'.",
    )
    warmup_steps: int = Field(0, ge=0, description="Optimiser updates of linear warm-up from 0 to learning_rate.")
    weight_decay: float = Field(0.0, ge=0.0, le=1.0, description="AdamW decoupled weight decay.")
    adam_beta1: float = Field(0.9, ge=0.0, lt=1.0, description="AdamW beta1.")
    adam_beta2: float = Field(0.999, ge=0.0, lt=1.0, description="AdamW beta2.")
    adam_epsilon: float = Field(1e-8, gt=0.0, description="AdamW epsilon.")
    max_grad_norm: float | None = Field(
        1.0, gt=0.0, description="Clip the global gradient norm to this value; None disables clipping."
    )

    # --- execution -----------------------------------------------------------------------------
    precision: Precision = Field(
        "auto", description="'auto' trains in bf16 on a GPU and fp32 on CPU; 'fp32' or 'bf16' force one."
    )
    gradient_checkpointing: bool = Field(
        False,
        description="Recompute activations in backward: less memory, about a third more compute. Off by default "
        "(TRL defaults to on): turn it on when the activations of a micro-batch do not fit.",
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seeds prompt order, sampling and initialisation.")
    num_threads: int | None = Field(
        None,
        ge=1,
        le=512,
        description="CPU threads for torch's kernels (torch.set_num_threads). None keeps torch's default (one per "
        "core). Small models run faster on 1 thread, and on a shared CPU extra threads mostly wait on each other.",
    )
    fast_paths: bool = Field(
        True,
        description="Decode and score with the engine's kernels (preallocated KV cache, a lean Llama/Qwen2 decode "
        "step, oneDNN-packed weights on CPU, an LM head that keeps no logits for backward) wherever they reproduce "
        "the transformers forward; each falls back to transformers elsewhere. False runs plain transformers "
        "throughout: slower, for comparison or to rule the kernels out when debugging.",
    )

    # Cross-field rules are field validators (not a model validator) so the error names the field.
    @field_validator("epsilon_high")
    @classmethod
    def _epsilon_high_not_below_epsilon(cls, value: float | None, info: ValidationInfo) -> float | None:
        epsilon = info.data.get("epsilon")
        if value is not None and epsilon is not None and value < epsilon:
            raise ValueError(f"must be >= epsilon ({epsilon}): it widens the upper clip range; omit it to use epsilon")
        return value

    @field_validator("ref_model_sync_steps")
    @classmethod
    def _sync_needs_a_reference(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("beta") == 0.0:
            raise ValueError("needs beta > 0: with beta = 0 no reference model is loaded, so there is nothing to sync")
        return value

    @field_validator("warmup_steps")
    @classmethod
    def _warmup_within_run(cls, value: int, info: ValidationInfo) -> int:
        updates = (
            info.data.get("max_steps", 0)
            * info.data.get("num_iterations", 1)
            * info.data.get("steps_per_generation", 1)
        )
        if value > updates:
            raise ValueError(
                f"exceeds the {updates} optimiser updates of the run "
                "(max_steps * num_iterations * steps_per_generation)"
            )
        return value

    @field_validator("steps_per_generation")
    @classmethod
    def _a_completion_per_update(cls, value: int, info: ValidationInfo) -> int:
        completions = info.data.get("prompts_per_step", 1) * info.data.get("group_size", 2)
        if value > completions:
            raise ValueError(f"exceeds the {completions} completions of a step (prompts_per_step * group_size)")
        return value
