"""A Hugging Face tokenizer for a GINC vocabulary.

Symbol ids equal token ids: ``/`` is 0 and symbols 1 .. V-1 are named ``a .. z, aa, ab, ..``;
the special tokens come after them (``<pad>`` = V, ``<bos>`` = V + 1, ``<eos>`` = V + 2,
``<unk>`` = V + 3), so token ids stored in a data set need no offset anywhere.
"""

from __future__ import annotations

import string
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")


def symbol_names(vocab_size: int) -> list[str]:
    """``["/", "a", ..., "z", "aa", "ab", ...]`` (bijective base 26)."""
    names = ["/"]
    for i in range(1, vocab_size):
        name, n = "", i
        while n > 0:
            n, r = divmod(n - 1, 26)
            name = string.ascii_lowercase[r] + name
        names.append(name)
    return names


def build_tokenizer(vocab_size: int):
    """A ``PreTrainedTokenizerFast`` (word level, whitespace-separated symbols)."""

    vocab = {name: i for i, name in enumerate(symbol_names(vocab_size))}
    for j, token in enumerate(SPECIAL_TOKENS):
        vocab[token] = vocab_size + j
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    pad, bos, eos, unk = SPECIAL_TOKENS
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=pad, bos_token=bos, eos_token=eos, unk_token=unk
    )


def save_tokenizer(vocab_size: int, directory: str | Path) -> None:
    build_tokenizer(vocab_size).save_pretrained(str(directory))
