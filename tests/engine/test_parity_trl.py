"""Parity with TRL's GRPOTrainer (trl==1.16.0, pinned in the test extra).

For one tiny random-init Qwen2 (the engine's tiny-demo), fixed prompts, fixed sampled completions
and fixed rewards, both sides compute one step: advantages, masks, old / reference log-probs, the
loss and the gradient of every parameter, which must agree within TOLERANCE.

How TRL is fed fixed inputs without patching it: its `rollout_func` hook (the documented, experimental
replacement for generation) returns our prompt and completion ids, and a reward function returns the
rewards stored in a dataset column. TRL's own `_generate_and_score_completions` then builds the masks,
advantages, `num_items_in_batch` and old / reference log-probs, and `compute_loss` the loss, as in its
training step. The engine side runs train.loss_settings -> loss.group_advantages -> train._policy_batch
-> update.score_batch -> update.update_policy, with an SGD optimiser that records the gradients it
is handed at each update. With num_iterations = 2 both sides take the same SGD step between the two
updates, so the second update runs with old log-probs that differ from the current ones.

The policy is the tiny model's weights plus noise and the reference the unperturbed weights, so the
KL term is not zero. Where TRL's definitions differ from the engine's (see loss.py), the TRL side is
configured to the engine's definition under TRL's own option name; the engine's opt-in
`kl_bias_correction` is TRL 1.16's default `use_bias_correction_kl=True`, tested both ways.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import datasets
import pytest
import torch
import trl
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.utils.engine import gradient_errors, make_config
from workers.engine.collect import Collected
from workers.engine.loss import group_advantages
from workers.engine.model import load_policy, load_reference
from workers.engine.rollout import Rollout, generate, left_pad
from workers.engine.sampling import SamplingParams
from workers.engine.train import _policy_batch, loss_settings
from workers.engine.update import score_batch, update_policy

PARITY_TRL_VERSION = "1.16.0"  # the version these definitions were read from (pinned in the test extra)

pytestmark = [
    pytest.mark.filterwarnings("ignore:You are using 'rollout_func':UserWarning"),  # the hook is experimental
    # transformers 5 renamed gradient checkpointing; TRL 1.16 still reads the old names
    pytest.mark.filterwarnings("ignore:.*gradient_checkpointing.* is deprecated:FutureWarning"),
]

# Tolerances, fp32 on CPU. The two sides run different kernels (TRL: the HF forward with arange
# positions and its chunked fused LM head; the engine: positions counting real tokens, which RoPE makes
# equivalent, micro-batches trimmed to their own width and a selective LM head), so they agree to
# rounding, not bit for bit. Measured when written: loss within 5e-8 absolute (losses are 1e-3..1),
# log-probs within 2.4e-7, advantages within 1.2e-7, gradients within 4.4e-7 relative (norm over all
# parameters) and 6.4e-7 per tensor; the bounds below leave a few times that.
TOLERANCE = {"rtol": 1e-5, "atol": 1e-7}  # losses, advantages, log-probs, metrics
GRAD_TOLERANCE = 2e-6  # relative gradient error: over all parameters, and per parameter tensor (see below)

GROUP = 4
MAX_NEW = 6
TEMPERATURE = 0.7
SGD_LR = 0.05  # the second of num_iterations = 2 updates then sees 10-40% of its tokens clipped
PROMPTS = [[5, 9], [7, 4, 12], [3, 8, 15, 6]]  # different lengths: left padding is exercised
# Row-major (prompt, member): lengths and endings; 'T' rows hit MAX_NEW without EOS (truncated).
COMPLETIONS = [
    "3", "6T", "2", "5",
    "6", "1", "6T", "4",
    "2", "6T", "3", "1",
]  # fmt: skip
REWARDS = [1.0, 0.0, 0.5, 0.0, 0.2, 0.9, 0.4, 0.4, 0.7, 0.7, 0.7, 0.7]  # the last group ties


def _fixed_completions(eos: int, vocab: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(1)
    rows = []
    for spec in COMPLETIONS:
        length = int(spec.rstrip("T"))
        ids = torch.randint(3, vocab, (length,), generator=generator).tolist()  # 0-2 are special tokens
        if not spec.endswith("T"):
            ids[-1] = eos
        rows.append(ids)
    return rows


@pytest.fixture(scope="module")
def setup(model_cache, tmp_path_factory) -> dict[str, Any]:
    """The tiny model's directory, the perturbed policy weights and the fixed completions."""
    config = make_config(model_cache)
    reference = load_policy(config, torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    policy = {
        name: value + 0.02 * torch.randn(value.shape, generator=generator)
        for name, value in reference.state_dict().items()
    }
    path = str(reference.config._name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    return {
        "path": path,
        "tokenizer": tokenizer,
        "policy": policy,
        "completions": _fixed_completions(tokenizer.eos_token_id, len(tokenizer)),
        "out": tmp_path_factory.mktemp("trl"),
    }


# ------------------------------------------------------------------------------------------------
# TRL side


def trl_trainer(
    setup: dict[str, Any], knobs: dict[str, Any], *, micro_batch_size: int | None, group: int = GROUP
) -> Any:
    """A GRPOTrainer on the tiny model whose 'generation' returns the fixed completions (the first
    len(COMPLETIONS) // group * group of them, in groups of `group`)."""
    prompts = len(COMPLETIONS) // group
    rows = prompts * group
    per_device = micro_batch_size or rows
    trl_knobs = {
        "loss_type": knobs.get("loss_type", "dapo"),
        "beta": knobs.get("beta", 0.0),
        "num_iterations": knobs.get("num_iterations", 1),
        "epsilon": knobs.get("epsilon", 0.2),
        "epsilon_high": knobs.get("epsilon_high"),
        "delta": knobs.get("delta"),
        "importance_sampling_level": knobs.get("importance_sampling_level", "token"),
        "scale_rewards": knobs.get("scale_rewards", "group"),
        "mask_truncated_completions": knobs.get("mask_truncated_completions", False),
        "use_bias_correction_kl": knobs.get("kl_bias_correction", False),
    }
    args = trl.GRPOConfig(
        output_dir=str(setup["out"]),
        use_cpu=True,
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=rows // per_device,
        num_generations=group,
        max_completion_length=MAX_NEW,
        temperature=TEMPERATURE,
        **trl_knobs,
    )
    prompt_ids = [PROMPTS[i % len(PROMPTS)] for i in range(prompts) for _ in range(group)]

    def fixed_rollout(_prompts: list[Any], _trainer: Any) -> dict[str, Any]:
        return {"prompt_ids": prompt_ids, "completion_ids": setup["completions"][:rows], "logprobs": None}

    def fixed_reward(completions: list[str], reward: list[float], **_: Any) -> list[float]:
        assert len(completions) == len(reward)
        return list(reward)

    model = AutoModelForCausalLM.from_pretrained(setup["path"], dtype=torch.float32)
    model.load_state_dict(setup["policy"])
    dataset = datasets.Dataset.from_dict({"prompt": ["p"] * prompts, "reward": [0.0] * prompts})
    trainer = trl.GRPOTrainer(
        model=model,
        reward_funcs=fixed_reward,
        args=args,
        train_dataset=dataset,
        processing_class=setup["tokenizer"],
        rollout_func=fixed_rollout,
    )
    trainer.model.train()
    # Set by Trainer's training loop before compute_loss; the loss normalisers read it.
    trainer.current_gradient_accumulation_steps = args.gradient_accumulation_steps
    return trainer


def trl_inputs(trainer: Any, rewards: list[float] = REWARDS) -> dict[str, Any]:
    """TRL's training inputs for the fixed batch (rows in prompt order, not yet shuffled)."""
    rows = [{"prompt": "p", "reward": reward} for reward in rewards]
    return trainer._generate_and_score_completions(rows)


def rows_of(inputs: dict[str, Any], index: torch.Tensor) -> dict[str, Any]:
    return {k: v[index] if torch.is_tensor(v) and v.dim() > 0 else v for k, v in inputs.items()}


def trl_step(
    trainer: Any, inputs: dict[str, Any], chunks: list[torch.Tensor], num_iterations: int
) -> tuple[list[float], list[dict[str, torch.Tensor]]]:
    """num_iterations updates over `chunks` (row indices of each micro-batch), SGD between them, as
    TRL's training loop does with the buffered generation batch. Returns losses and gradients."""
    losses, grads = [], []
    params = dict(trainer.model.named_parameters())
    for _ in range(num_iterations):
        total = 0.0
        for index in chunks:
            loss = trainer.compute_loss(trainer.model, rows_of(inputs, index))
            loss.backward()
            total += float(loss.detach())
        losses.append(total)
        grads.append({name: p.grad.detach().clone() for name, p in params.items()})
        with torch.no_grad():
            for p in params.values():
                p.add_(p.grad, alpha=-SGD_LR)
                p.grad = None
    return losses, grads


# ------------------------------------------------------------------------------------------------
# engine side


class RecordingSGD(torch.optim.SGD):
    """Plain SGD that keeps a copy of the gradients of every update."""

    def __init__(self, named: dict[str, torch.nn.Parameter], lr: float) -> None:
        super().__init__(list(named.values()), lr=lr)
        self.names = {id(p): name for name, p in named.items()}
        self.seen: list[dict[str, torch.Tensor]] = []

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        params = [p for group in self.param_groups for p in group["params"]]
        self.seen.append({self.names[id(p)]: p.grad.detach().clone() for p in params})
        return super().step(closure)


def engine_step(
    setup: dict[str, Any], knobs: dict[str, Any], *, micro_batch_size: int | None, rollout: Rollout | None = None
) -> dict[str, Any]:
    """One engine step on the fixed completions, or on `rollout` (a real one: its masks as generated)."""
    config = make_config(
        None,
        model_source=setup["path"],
        group_size=GROUP,
        prompts_per_step=len(PROMPTS),
        max_new_tokens=MAX_NEW,
        temperature=TEMPERATURE,
        micro_batch_size=micro_batch_size,
        max_grad_norm=None,
        **knobs,
    )
    device = torch.device("cpu")
    pad, eos = setup["tokenizer"].pad_token_id, setup["tokenizer"].eos_token_id
    prompt_ids, prompt_mask = left_pad([ids for ids in PROMPTS for _ in range(GROUP)], pad)
    completions = setup["completions"]
    completion_ids = torch.full((len(completions), MAX_NEW), pad)
    for row, ids in enumerate(completions):
        completion_ids[row, : len(ids)] = torch.tensor(ids)
    completion_mask = (completion_ids != pad).long()
    truncated = torch.tensor([ids[-1] != eos for ids in completions])
    if rollout is None:
        rollout = Rollout(
            prompt_ids, prompt_mask, completion_ids, completion_mask, truncated, texts=[""] * len(completions)
        )
    truncated = rollout.truncated
    rewards = torch.tensor(REWARDS)
    collected = Collected(
        rollout=rollout,
        row_indices=[],
        rewards=rewards,
        components={},
        all_rewards=rewards,
        all_components={},
        all_lengths=rollout.lengths,
        all_truncated=truncated,
    )
    # As train.train(): advantages, then old (mu > 1) and reference (beta > 0) log-probs, then the update.
    advantages, _ = group_advantages(rewards, GROUP, config.scale_rewards, config.reward_std_epsilon)
    batch = _policy_batch(collected, advantages, config)
    model = load_policy(config, device)
    model.load_state_dict(setup["policy"])
    if config.num_iterations > 1:
        batch.old_logps = score_batch(model, batch, config.micro_batch_size, config.temperature)
    if config.beta > 0:
        batch.ref_logps = score_batch(
            load_reference(config, device), batch, config.micro_batch_size, config.temperature
        )
    named = {name: p for name, p in model.named_parameters() if p.requires_grad}
    optimizer = RecordingSGD(named, lr=SGD_LR)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    metrics = update_policy(
        model,
        list(named.values()),
        optimizer,
        scheduler,
        batch,
        loss_settings(config),
        num_iterations=config.num_iterations,
        micro_batch_size=config.micro_batch_size,
        temperature=config.temperature,
        max_grad_norm=None,
    )
    return {"metrics": metrics, "grads": optimizer.seen, "batch": batch, "advantages": advantages}


# ------------------------------------------------------------------------------------------------
# the comparisons


def run_both(
    setup: dict[str, Any], knobs: dict[str, Any], micro_batch_size: int | None = None, rollout: Rollout | None = None
) -> dict[str, Any]:
    """One step on both sides; asserts every intermediate and the result agree."""
    engine = engine_step(setup, knobs, micro_batch_size=micro_batch_size, rollout=rollout)
    trainer = trl_trainer(setup, knobs, micro_batch_size=micro_batch_size)
    inputs = trl_inputs(trainer)
    batch = engine["batch"]
    # TRL shuffles the rows before splitting them into micro-batches; give it the engine's split, which
    # is one of the splits TRL could draw (and for bnpo the split is part of the definition).
    chunks = batch.micro_batches(micro_batch_size)
    mu = knobs.get("num_iterations", 1)
    losses, grads = trl_step(trainer, inputs, chunks, mu)

    # what goes into the loss
    torch.testing.assert_close(engine["advantages"], inputs["advantages"], **TOLERANCE)
    torch.testing.assert_close(batch.loss_mask, inputs["completion_mask"].float(), rtol=0, atol=0)
    assert int(batch.loss_mask.sum()) == int(inputs["num_items_in_batch"])
    mask = batch.loss_mask.bool()
    for ours, theirs in (("old_logps", "old_per_token_logps"), ("ref_logps", "ref_per_token_logps")):
        assert (getattr(batch, ours) is None) == (theirs not in inputs), ours  # skipped on both sides
        if theirs in inputs:
            torch.testing.assert_close(getattr(batch, ours)[mask], inputs[theirs][mask], **TOLERANCE)
    # the loss and the gradient of each update
    torch.testing.assert_close(engine["metrics"]["loss"], sum(losses) / mu, **TOLERANCE)
    assert len(engine["grads"]) == len(grads) == mu
    for update, (ours, theirs) in enumerate(zip(engine["grads"], grads, strict=True)):
        whole, per_tensor = gradient_errors(ours, theirs)
        assert whole <= GRAD_TOLERANCE and per_tensor <= GRAD_TOLERANCE, (update, whole, per_tensor)
    # the metrics both report under the same definition (token level, one micro-batch: TRL logs one
    # value per micro-batch, and at sequence level it counts clipped sequences, the engine tokens)
    logged = trainer._metrics["train"]
    if len(chunks) == 1 and knobs.get("importance_sampling_level", "token") == "token":
        metrics = engine["metrics"]
        torch.testing.assert_close(metrics["entropy"], logged["entropy"][0], **TOLERANCE)
        for ours, theirs in (("low", "low_mean"), ("high", "high_mean"), ("region", "region_mean")):
            assert metrics[f"clip/{ours}_frac"] == pytest.approx(sum(logged[f"clip_ratio/{theirs}"]) / mu, abs=1e-6)
        if knobs.get("beta", 0.0) > 0:
            torch.testing.assert_close(metrics["kl"], sum(logged["kl"]) / mu, **TOLERANCE)
    return {"engine": engine, "trainer": trainer, "inputs": inputs, "losses": losses}


GRID = [
    pytest.param({"loss_type": loss, "beta": beta, "num_iterations": mu, **extra}, id=f"{loss}-beta{beta}-mu{mu}")
    for loss in ("grpo", "bnpo", "dr_grpo", "dapo")
    for beta in (0.0, 0.04)
    for mu, extra in ((1, {}), (2, {"epsilon_high": 0.28}))  # mu = 2 also runs clip-higher
]


@pytest.mark.parametrize("knobs", GRID)
def test_loss_and_gradients_match_trl(setup, knobs):
    result = run_both(setup, knobs)
    if knobs["num_iterations"] > 1:  # the second update really runs off-policy, with clipped ratios
        assert result["trainer"]._metrics["train"]["clip_ratio/region_mean"][-1] > 0.05
    if knobs["beta"] > 0:
        assert result["engine"]["metrics"]["kl"] > 1e-4


# (knobs, the knob whose removal must change the gradient: proof that the fixed batch exercises it)
VARIANTS = [
    pytest.param({"num_iterations": 2, "epsilon": 0.1}, "epsilon", id="symmetric-clip-0.1"),
    pytest.param({"num_iterations": 2, "delta": 1.5, "epsilon_high": 0.28}, "delta", id="two-sided-delta"),
    pytest.param(
        {"num_iterations": 2, "importance_sampling_level": "sequence", "loss_type": "grpo"},
        "importance_sampling_level",
        id="gspo-grpo",
    ),
    pytest.param(
        {"num_iterations": 2, "importance_sampling_level": "sequence", "beta": 0.04},
        "importance_sampling_level",
        id="sequence-dapo-beta",
    ),
    pytest.param({"scale_rewards": "batch"}, "scale_rewards", id="scale-batch"),
    pytest.param({"scale_rewards": "none", "loss_type": "dr_grpo"}, "scale_rewards", id="scale-none-dr_grpo"),
    pytest.param(
        {"mask_truncated_completions": True, "loss_type": "grpo", "beta": 0.04},
        "mask_truncated_completions",
        id="mask-truncated-grpo",
    ),
    pytest.param(
        {"mask_truncated_completions": True, "num_iterations": 2},
        "mask_truncated_completions",
        id="mask-truncated-dapo-mu2",
    ),
]


@pytest.mark.parametrize(("knobs", "exercised"), VARIANTS)
def test_variants_match_trl(setup, knobs, exercised):
    result = run_both(setup, knobs)
    without = engine_step(setup, {k: v for k, v in knobs.items() if k != exercised}, micro_batch_size=None)
    whole, _ = gradient_errors(without["grads"][-1], result["engine"]["grads"][-1])
    assert whole > 1e-3, f"{exercised} does not change the gradient on this batch"


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
def test_micro_batched_step_matches_trl_gradient_accumulation(setup, loss_type):
    """3 micro-batches of 4 completions (TRL: per_device_train_batch_size 4, gradient accumulation 3)."""
    run_both(setup, {"loss_type": loss_type, "beta": 0.04, "num_iterations": 2}, micro_batch_size=4)


@pytest.mark.parametrize("knobs", [{"num_iterations": 1}, {"num_iterations": 2, "epsilon_high": 0.28}])
def test_kl_bias_correction_matches_trl_default(setup, knobs):
    """TRL 1.16's default (use_bias_correction_kl=True) multiplies the k3 term by the importance ratio;
    the engine does so with kl_bias_correction=True."""
    run_both(setup, knobs | {"beta": 0.04, "kl_bias_correction": True})


def test_kl_bias_correction_changes_the_gradient_not_the_loss(setup):
    """On-policy the ratio is 1 in value, so the loss is the same, but its gradient gains
    beta * kl_t * grad log p_t per token."""
    plain = engine_step(setup, {"beta": 0.04}, micro_batch_size=None)
    corrected = engine_step(setup, {"beta": 0.04, "kl_bias_correction": True}, micro_batch_size=None)
    torch.testing.assert_close(plain["metrics"]["loss"], corrected["metrics"]["loss"], **TOLERANCE)
    whole, _ = gradient_errors(plain["grads"][0], corrected["grads"][0])
    assert whole > 1e-3  # far outside GRAD_TOLERANCE: a different gradient, not rounding


@pytest.mark.parametrize("scale_rewards", ["group", "batch", "none"])
def test_advantages_match_trl_on_ties_and_spread(setup, scale_rewards):
    """Group mean; std Bessel-corrected (TRL's nanstd) over the group or the batch; std + 1e-4 (fixed in
    TRL, reward_std_epsilon's default here)."""
    trainer = trl_trainer(setup, {"scale_rewards": scale_rewards}, micro_batch_size=None)
    theirs = trl_inputs(trainer)["advantages"]
    ours, _ = group_advantages(torch.tensor(REWARDS), GROUP, scale_rewards, make_config(None).reward_std_epsilon)
    torch.testing.assert_close(ours, theirs, **TOLERANCE)
    assert ours[-GROUP:].abs().max() == 0  # the tied group
    assert ours[:-GROUP].abs().min() > 0


def test_trl_float32_group_mean_leaves_some_tied_groups_a_small_advantage(setup):
    """A documented difference (loss.group_advantages): at TRL's default G = 8, eight rewards of 0.7
    have a float32 mean one ulp off 0.7, so TRL gives the tied group an advantage of about 6e-4, all
    of one sign. The engine computes the mean in float64 and gives exactly 0."""
    rewards = [0.7] * 8
    trainer = trl_trainer(setup, {}, micro_batch_size=None, group=8)
    theirs = trl_inputs(trainer, rewards)["advantages"]
    ours, _ = group_advantages(torch.tensor(rewards), 8, "group", 1e-4)
    assert (ours == 0).all()
    assert theirs.abs().min() > 1e-4 and (theirs.sign() == theirs[0].sign()).all()


def test_the_pinned_trl_is_the_one_compared_against():
    assert trl.__version__ == PARITY_TRL_VERSION


def test_config_names_reach_the_loss():
    """clip_high falls back to epsilon; dr_grpo's constant is max_new_tokens (TRL: max_completion_length)."""
    config = dataclasses.replace(make_config(None), epsilon=0.15, epsilon_high=None, max_new_tokens=9)
    settings = loss_settings(config)
    assert (settings.epsilon, settings.epsilon_high, settings.max_new_tokens) == (0.15, 0.15, 9)


def real_rollout(setup: dict[str, Any], stop: list[str]) -> tuple[dict[str, Any], Rollout]:
    """Completions sampled by the engine's own rollout from the policy (EOS, stop strings and truncation
    at MAX_NEW as generated), and a setup whose fixed completions are those, for TRL's rollout_func."""
    config = make_config(None, model_source=setup["path"])
    model = load_policy(config, torch.device("cpu")).eval()
    model.load_state_dict(setup["policy"])
    out = generate(
        model, setup["tokenizer"], PROMPTS, group_size=GROUP, max_new_tokens=MAX_NEW,
        params=SamplingParams(temperature=TEMPERATURE), generator=torch.Generator().manual_seed(5), stop=stop,
    )  # fmt: skip
    completions = [ids[: int(n)].tolist() for ids, n in zip(out.completion_ids, out.lengths, strict=True)]
    return {**setup, "completions": completions}, out


@pytest.mark.parametrize(
    ("stop", "knobs"),
    [
        pytest.param([], {"mask_truncated_completions": True, "beta": 0.04}, id="eos-truncation-masked"),
        # TRL has no stop strings: a row ended by one is a completion without EOS there, so its mask (every
        # token up to the stop token) is the same, but mask_truncated_completions would drop it (loss.py).
        pytest.param(["3"], {"num_iterations": 2}, id="stop-strings"),
    ],
)
def test_masks_from_the_real_rollout_match_trl(setup, stop, knobs):
    real_setup, rollout = real_rollout(setup, stop)
    eos = setup["tokenizer"].eos_token_id
    ended_by_eos = [bool(ids[-1] == eos) for ids in real_setup["completions"]]
    truncated = rollout.truncated.tolist()
    assert any(ended_by_eos) and any(truncated)  # both endings occur with this seed
    if stop:
        assert any(not e and not t for e, t in zip(ended_by_eos, truncated, strict=True))  # a stop string ended one
    assert rollout.lengths.min() < MAX_NEW
    result = run_both(real_setup, knobs, rollout=rollout)
    assert torch.equal(result["engine"]["batch"].completion_mask, rollout.completion_mask)
