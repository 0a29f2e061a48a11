"""Tokenised training data on disk: streamed in, read back by position (store.py), cached by
what decides the tokens (cache.py). Bounded memory whatever the data set's size."""

from tunespec_local.encoded.cache import ENCODED_DIR, cached_split, split_key, tokenizer_digest
from tunespec_local.encoded.store import EncodedSequences, SplitWriter, is_complete

__all__ = ["ENCODED_DIR", "EncodedSequences", "SplitWriter", "cached_split", "is_complete", "split_key", "tokenizer_digest"]
