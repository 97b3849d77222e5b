"""The reference workload of the benchmark, built deterministically on this machine (no downloads).

A random-init Qwen2 causal LM and a byte-level BPE tokenizer trained with `tokenizers` on text
generated here from a fixed seed, saved with `save_pretrained` so both trainers load the very same
files through `from_pretrained`. A random-init model spreads its probability almost uniformly over
the vocabulary, so it would practically never sample EOS; the builder gives EOS a fixed logit offset
instead (see `arrange_eos`), which makes completion lengths roughly geometric: mean about 30 of 64,
some truncated, and stable while lr 1e-5 barely moves the weights.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

SPECIAL_TOKENS = ["<pad>", "<eos>", "<unk>"]
CONSTANT_CHANNEL = 0  # hidden channel that carries a constant through the network (see arrange_eos)
BUILDER_VERSION = 2  # part of the cache key: bump when the builder's output changes


@dataclass(frozen=True)
class Preset:
    """Model shape, tokenizer size and the run's dtype for one benchmark size."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    corpus_words: int  # words of generated text the tokenizer is trained on
    dtype: str  # 'fp32' or 'bf16': the compute dtype of both trainers
    eos_probability: float = 0.032  # per-token EOS chance, calibrated: mean length ~30 of 64, ~20% truncated
    seed: int = 0

    def digest(self) -> str:
        spec = {**asdict(self), "builder": BUILDER_VERSION}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


PRESETS = {
    # The reference workload (~5M parameters), fp32 on CPU.
    "cpu": Preset(
        "cpu",
        hidden=256,
        layers=4,
        heads=4,
        kv_heads=2,
        intermediate=768,
        vocab=8192,
        corpus_words=300_000,
        dtype="fp32",
    ),
    # A 0.5B-class model (Qwen2.5-0.5B's layers, 387M parameters with a 32k vocabulary), bf16 on a GPU.
    "gpu": Preset(
        "gpu",
        hidden=896,
        layers=24,
        heads=14,
        kv_heads=2,
        intermediate=4864,
        vocab=32768,
        corpus_words=1_500_000,
        dtype="bf16",
    ),
    # Small enough for the CI smoke test (a few seconds per trainer).
    "smoke": Preset(
        "smoke",
        hidden=64,
        layers=2,
        heads=4,
        kv_heads=2,
        intermediate=128,
        vocab=512,
        corpus_words=20_000,
        dtype="fp32",
    ),
}

_ONSETS = [
    "",
    "b",
    "c",
    "d",
    "f",
    "g",
    "h",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "w",
    "st",
    "tr",
    "pl",
    "gr",
    "sh",
    "th",
    "ch",
    "br",
    "cl",
]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "io"]
_CODAS = ["", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ck", "ng"]
_PUNCTUATION = [".", ".", ".", ",", ",", "?", "!", ";", ":"]


def _lexicon(rng: random.Random, size: int) -> list[str]:
    words = set()
    while len(words) < size:
        syllables = rng.choice([1, 1, 2, 2, 2, 3, 3, 4])
        words.add("".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables)))
    return sorted(words)


def generate_text(words: int, seed: int) -> list[str]:
    """Deterministic pseudo-English: Zipf-distributed words from a syllable lexicon, numbers and
    punctuation, in sentences of 4-24 words. Returns one sentence per entry."""
    rng = random.Random(seed)
    lexicon = _lexicon(rng, max(2000, words // 20))
    # cumulative weights once: random.choices would re-accumulate all of them at every call
    cumulative = list(itertools.accumulate(1.0 / (rank + 1) ** 1.05 for rank in range(len(lexicon))))
    sentences, written = [], 0
    while written < words:
        length = rng.randint(4, 24)
        tokens = rng.choices(lexicon, cum_weights=cumulative, k=length)
        if rng.random() < 0.3:
            tokens.insert(rng.randrange(length), str(rng.randint(0, 9999)))
        tokens[0] = tokens[0].capitalize()
        sentences.append(" ".join(tokens) + rng.choice(_PUNCTUATION))
        written += length
    return sentences


def train_tokenizer(sentences: list[str], vocab: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE (GPT-2 style, as Qwen2's) with `vocab` entries, specials included."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(sentences, trainer=trainer)
    if backend.get_vocab_size() != vocab:
        raise RuntimeError(f"the corpus supports only {backend.get_vocab_size()} tokens, not {vocab}")
    # An explicit unk token: otherwise Qwen2Tokenizer adds its own, with an id past the embedding table.
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


@torch.no_grad()
def arrange_eos(model: Qwen2ForCausalLM, eos_id: int, probability: float, sample_ids: torch.Tensor) -> None:
    """Give EOS a stable logit offset, so that it is sampled with `probability` per token (Qwen2 has no
    LM-head bias, and the head is tied to the embedding).

    Every token's embedding gets the same value `a` on one hidden channel that no layer reads or
    writes, so the residual stream carries `a` unchanged to the final RMSNorm, where the channel is
    about the same at every position. Its norm weight is set so that the channel adds ~1 to every
    logit (no effect on softmax), and EOS's row gets a larger value there: a fixed extra EOS logit,
    calibrated by bisection on `sample_ids` (1, T) to the wanted mean EOS probability.
    """
    channel = CONSTANT_CHANNEL
    embedding = model.get_input_embeddings().weight  # (V, H), also the LM head
    constant = 4.0 * embedding[:, channel + 1 :].norm(dim=1).mean().item()  # dominates the channel's RMS
    embedding[:, channel] = constant
    for layer in model.model.layers:
        for proj in (
            layer.self_attn.q_proj,
            layer.self_attn.k_proj,
            layer.self_attn.v_proj,
            layer.mlp.gate_proj,
            layer.mlp.up_proj,
        ):
            proj.weight[:, channel] = 0.0  # reads nothing from the channel
        for proj in (layer.self_attn.o_proj, layer.mlp.down_proj):
            proj.weight[channel, :] = 0.0  # writes nothing into it
    hidden = model.model(input_ids=sample_ids).last_hidden_state[0]  # (T, H), after the final norm
    model.model.norm.weight[channel] /= hidden[:, channel].mean().item() * constant
    hidden = model.model(input_ids=sample_ids).last_hidden_state[0].double()
    # The sample holds no EOS, so the EOS row only moves EOS's own logit: linear in the row's channel.
    logits = hidden @ embedding.double().t()  # (T, V)
    others = torch.cat([logits[:, :eos_id], logits[:, eos_id + 1 :]], dim=1).logsumexp(dim=-1)  # (T,)
    eos_base = logits[:, eos_id] - hidden[:, channel] * embedding[eos_id, channel].item()
    low, high = 0.0, 4.0 * math.log(model.config.vocab_size) * constant
    for _ in range(60):
        value = constant + (low + high) / 2
        eos = torch.sigmoid(eos_base + hidden[:, channel] * value - others).mean().item()
        low, high = ((low + high) / 2, high) if eos < probability else (low, (low + high) / 2)
    embedding[eos_id, channel] = constant + (low + high) / 2


def make_prompts(count: int, seed: int) -> list[str]:
    """`count` prompts of 10-20 words (about 20-40 tokens), deterministic."""
    rng = random.Random(seed + 1)
    sentences = generate_text(count * 40, seed + 1)
    prompts = []
    while len(prompts) < count:
        text = " ".join(rng.sample(sentences, 2))
        words = text.split()[: rng.randint(10, 20)]
        prompts.append(" ".join(words))
    return prompts


def build_workload(preset: Preset, cache_dir: Path) -> Path:
    """A save_pretrained directory (model + tokenizer) for `preset`, built once per cache dir."""
    target = Path(cache_dir) / f"{preset.name}-{preset.digest()}"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(generate_text(preset.corpus_words, preset.seed), preset.vocab)
    head_dim = preset.hidden // preset.heads
    config = Qwen2Config(
        vocab_size=preset.vocab,
        hidden_size=preset.hidden,
        intermediate_size=preset.intermediate,
        num_hidden_layers=preset.layers,
        num_attention_heads=preset.heads,
        num_key_value_heads=preset.kv_heads,
        head_dim=head_dim,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(preset.seed)
        model = Qwen2ForCausalLM(config)
    sample = tokenizer(" ".join(make_prompts(16, preset.seed + 7)), return_tensors="pt")["input_ids"]
    arrange_eos(model, tokenizer.eos_token_id, preset.eos_probability, sample)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        os.replace(staging, target)
    except OSError:
        if not (target / "config.json").exists():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
