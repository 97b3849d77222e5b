"""Build the 'tiny-demo' model: a small random-init Qwen2 with a character-level tokenizer.

There is no hub access, so demos and tests build their model locally. The builder is deterministic
(fixed seed, fixed alphabet) and writes a normal `save_pretrained` directory (model + tokenizer),
which the engine then loads through the same `from_pretrained` path as any real model. The directory
is built once per cache dir; concurrent builders race harmlessly (build in a temp dir, rename).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

logger = logging.getLogger(__name__)

TINY_DEMO = "tiny-demo"
SPECIAL_TOKENS = ("<pad>", "<eos>", "<unk>")
# Small alphabet on purpose: a random-init model's chance of writing the right answer is about
# 1 / vocabulary, so a ~20-token vocabulary starts near 0.1 reward on one-character answers.
DEFAULT_ALPHABET = "0123456789 +-=:>?"


@dataclass(frozen=True)
class TinySpec:
    """Shape of the tiny model; the defaults learn the demo task in about a minute on one CPU core."""

    alphabet: str = DEFAULT_ALPHABET
    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    max_positions: int = 256
    seed: int = 0

    def dir_name(self) -> str:
        # Any change to the spec gets its own directory, so a cache never serves a stale model.
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]
        return f"tiny-demo-{digest}"


def build_char_tokenizer(alphabet: str) -> PreTrainedTokenizerFast:
    """One token per character: a byte-level BPE with no merges over `alphabet` (printable ASCII).

    Byte-level on purpose: transformers 5 loads every qwen2 checkpoint's tokenizer as Qwen2Tokenizer,
    which rebuilds the pipeline as byte-level BPE from the saved vocab and merges. A tokenizer that
    already is one round-trips through AutoTokenizer unchanged (a WordLevel one would lose spaces).
    """
    if not all(" " <= char <= "~" for char in alphabet):
        raise ValueError("the tiny tokenizer's alphabet must be printable ASCII")
    # Byte-level BPE spells a space as 'Ġ'; every other printable ASCII byte stands for itself.
    symbols = ["\u0120" if char == " " else char for char in dict.fromkeys(alphabet)]
    vocab = {token: index for index, token in enumerate((*SPECIAL_TOKENS, *symbols))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    # An explicit unk token in the vocabulary: otherwise Qwen2Tokenizer adds its own default one,
    # with an id past the model's embedding table.
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )


def build_tiny_model(cache_dir: Path, spec: TinySpec | None = None) -> Path:
    """Return a directory holding the tiny model and its tokenizer, building it on first use."""
    spec = spec or TinySpec()
    target = Path(cache_dir) / spec.dir_name()
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = build_char_tokenizer(spec.alphabet)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_positions,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    # fork_rng: building the model must not disturb the caller's global RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = Qwen2ForCausalLM(config)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        os.replace(staging, target)  # atomic publish; fails harmlessly if a racing builder won
    except OSError:
        if not (target / "config.json").exists():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("built tiny model at %s", target)
    return target
