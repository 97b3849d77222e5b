"""The sampler is exact: processors match transformers', draws follow the softmax distribution."""

import math

import pytest
import torch
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from workers.engine import sampling
from workers.engine.sampling import SamplingParams, inverse_cdf_sample, next_tokens, process_logits


def chi2_critical(dof: int, z: float = 3.09) -> float:
    """Upper p = 0.001 quantile of chi-square(dof) (Wilson-Hilferty; 43.8 for dof 19, table value 43.82)."""
    return dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3


CHI2_CRITICAL_DF19_P001 = chi2_critical(19)


def chi_square(counts: torch.Tensor, probs: torch.Tensor) -> float:
    expected = probs * counts.sum()
    keep = expected > 0
    return float((((counts - expected) ** 2)[keep] / expected[keep]).sum())


def draw(logits: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return inverse_cdf_sample(logits.expand(n, -1).contiguous(), generator)


def test_inverse_cdf_matches_softmax_distribution():
    logits = torch.randn(20, generator=torch.Generator().manual_seed(0)) * 2
    probs = torch.softmax(logits, dim=-1)
    counts = torch.bincount(draw(logits, 50_000, seed=1), minlength=20).double()
    assert chi_square(counts, probs.double()) < CHI2_CRITICAL_DF19_P001


def test_chi_square_check_has_power():
    # The same check rejects a slightly wrong distribution (so the test above can fail).
    logits = torch.randn(20, generator=torch.Generator().manual_seed(0)) * 2
    wrong = torch.softmax(logits * 1.1, dim=-1)
    counts = torch.bincount(draw(logits, 50_000, seed=1), minlength=20).double()
    assert chi_square(counts, wrong.double()) > CHI2_CRITICAL_DF19_P001


def test_zero_probability_tokens_are_never_drawn():
    logits = torch.full((1, 50), float("-inf"))
    logits[0, [3, 17, 49]] = torch.tensor([0.0, 1.0, -1.0])
    tokens = draw(logits, 20_000, seed=2)
    assert set(tokens.unique().tolist()) == {3, 17, 49}
    one_hot = torch.full((1, 8), float("-inf"))
    one_hot[0, 7] = 0.0  # the last token alone: the overflow fallback must still land on it
    assert draw(one_hot, 1000, seed=3).eq(7).all()


def test_sampling_is_deterministic_given_the_generator():
    logits = torch.randn(64, 100)
    assert torch.equal(draw(logits, 64, seed=5), draw(logits, 64, seed=5))


@pytest.mark.parametrize("top_k", [1, 3, 10, 1000])
def test_top_k_matches_transformers(top_k):
    logits = torch.randn(6, 40)
    logits[0, :5] = 2.0  # ties at the boundary are kept
    ours = process_logits(logits, SamplingParams(top_k=top_k), None)
    theirs = TopKLogitsWarper(top_k)(None, logits.clone())
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("top_p", [0.05, 0.5, 0.9, 0.999])
def test_top_p_matches_transformers(top_p):
    logits = torch.randn(6, 40) * 3
    ours = process_logits(logits, SamplingParams(top_p=top_p), None)
    theirs = TopPLogitsWarper(top_p)(None, logits.clone())
    assert torch.equal(ours, theirs)


def test_full_chain_matches_transformers_order():
    logits = torch.randn(4, 30) * 2
    history = torch.randint(0, 30, (4, 7))
    params = SamplingParams(temperature=0.7, top_k=12, top_p=0.8, repetition_penalty=1.3)
    ours = process_logits(logits, params, history)
    expected = RepetitionPenaltyLogitsProcessor(1.3)(history, logits.clone())
    for warper in (TemperatureLogitsWarper(0.7), TopKLogitsWarper(12), TopPLogitsWarper(0.8)):
        expected = warper(history, expected)
    torch.testing.assert_close(ours, expected)


def test_top_p_sampling_draws_only_from_the_nucleus_in_proportion():
    logits = torch.randn(1, 20, generator=torch.Generator().manual_seed(4)) * 2
    params = SamplingParams(top_p=0.7)
    nucleus = torch.softmax(process_logits(logits, params, None), dim=-1)[0]
    generator = torch.Generator().manual_seed(6)
    tokens, _ = next_tokens(logits.expand(40_000, -1).contiguous(), params, generator)
    counts = torch.bincount(tokens, minlength=20).double()
    assert counts[nucleus == 0].sum() == 0
    dof = int((nucleus > 0).sum()) - 1
    assert dof >= 2
    assert chi_square(counts, nucleus.double()) < chi2_critical(dof)


def test_greedy_is_argmax_after_penalty():
    logits = torch.tensor([[1.0, 3.0, 2.0]])
    history = torch.tensor([[1]])
    token, _ = next_tokens(logits, SamplingParams(greedy=True, repetition_penalty=2.0), torch.Generator(), history)
    assert token.tolist() == [2]  # 3.0 / 2 = 1.5 < 2.0


def full_cdf_reference(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The textbook inverse-CDF draw: the whole vocabulary's CDF in float64, same uniforms."""
    probs = torch.softmax(logits, dim=-1).double()
    cdf = probs.cumsum(dim=-1)
    uniform = torch.rand(logits.size(0), 1, generator=generator, dtype=torch.float64)
    return torch.searchsorted(cdf, uniform * cdf[:, -1:], right=True).squeeze(1).clamp(max=logits.size(1) - 1)


@pytest.mark.parametrize("vocab", [20, 128, 1000, 8192])
def test_two_level_search_draws_what_the_full_cdf_draws(vocab):
    logits = torch.randn(500, vocab, generator=torch.Generator().manual_seed(vocab)) * 3
    logits[:, ::7] = float("-inf")  # zero-probability tokens inside blocks
    if vocab > 300:
        logits[:, :300] = float("-inf")  # whole blocks of zero probability
    ours = inverse_cdf_sample(logits, torch.Generator().manual_seed(9))
    expected = full_cdf_reference(logits, torch.Generator().manual_seed(9))
    assert torch.equal(ours, expected)
    assert torch.isfinite(logits.gather(1, ours[:, None])).all()


def test_two_level_search_matches_softmax_across_blocks(monkeypatch):
    monkeypatch.setattr(sampling, "SAMPLE_BLOCK", 8)  # 20 tokens: blocks of 8, 8 and a partial 4
    logits = torch.randn(20, generator=torch.Generator().manual_seed(0)) * 2
    counts = torch.bincount(draw(logits, 50_000, seed=1), minlength=20).double()
    assert chi_square(counts, torch.softmax(logits, dim=-1).double()) < CHI2_CRITICAL_DF19_P001


def test_a_value_past_the_end_falls_back_to_the_last_possible_token():
    cdf = torch.tensor([[0.2, 0.5, 1.0, 1.0]], dtype=torch.float64)
    mass = torch.tensor([[0.2, 0.3, 0.5, 0.0]])
    assert sampling._first_above(cdf, torch.tensor([[1.0]], dtype=torch.float64), mass).tolist() == [2]
    assert sampling._first_above(cdf, torch.tensor([[0.2]], dtype=torch.float64), mass).tolist() == [1]


@pytest.mark.parametrize("min_p", [0.01, 0.1, 0.5, 1.0])
def test_min_p_matches_transformers(min_p):
    from transformers.generation.logits_process import MinPLogitsWarper

    logits = torch.randn(6, 40) * 3
    ours = process_logits(logits, SamplingParams(min_p=min_p), None)
    theirs = MinPLogitsWarper(min_p)(None, logits.clone())
    assert torch.equal(ours, theirs)


def test_full_chain_with_min_p_matches_transformers_order():
    from transformers.generation.logits_process import MinPLogitsWarper

    logits = torch.randn(4, 30) * 2
    history = torch.randint(0, 30, (4, 7))
    params = SamplingParams(temperature=0.7, top_k=12, top_p=0.95, repetition_penalty=1.3, min_p=0.1)
    expected = RepetitionPenaltyLogitsProcessor(1.3)(history, logits.clone())
    for warper in (TemperatureLogitsWarper(0.7), TopKLogitsWarper(12), TopPLogitsWarper(0.95), MinPLogitsWarper(0.1)):
        expected = warper(history, expected)
    torch.testing.assert_close(process_logits(logits, params, history), expected)


def test_sampler_logprobs_are_the_drawn_tokens_log_softmax():
    logits = torch.randn(64, 300) * 2  # several blocks of the two-level search
    params = SamplingParams(temperature=0.8, top_k=50, top_p=0.9, min_p=0.02)
    tokens, logps = next_tokens(logits, params, torch.Generator().manual_seed(3))
    expected = torch.log_softmax(process_logits(logits, params, None), dim=-1).gather(1, tokens[:, None]).squeeze(1)
    torch.testing.assert_close(logps, expected, rtol=0, atol=1e-5)
    assert next_tokens(logits, SamplingParams(greedy=True), torch.Generator())[1] is None
