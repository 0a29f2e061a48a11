"""Vertex label rules: what the job's labels may look like, and how user labels are fixed.

Google Cloud labels: keys and values of at most 63 characters, lowercase letters (Unicode
allowed by the service, ASCII here), digits, `_` and `-`; keys start with a letter; at
most 64 labels. tunespec lowercases and replaces other characters with `-` (so `Team: ML`
becomes `team: ml`), and reports what it cannot fix (an empty key, one not starting with
a letter, too many labels).
"""

from __future__ import annotations

import re

MAX_LENGTH = 63
MAX_LABELS = 64
KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_INVALID = re.compile(r"[^a-z0-9_-]+")

# tunespec's own labels: the run label makes submission idempotent (a retry finds the job
# it already created); spec and fingerprint let a user find jobs from the console. Keys
# use `_`, not `-`, so `labels.tunespec_run="..."` is a plain identifier in a list filter.
RESERVED_PREFIXES = ("tunespec_", "tunespec-")
RUN_LABEL = "tunespec_run"
SPEC_LABEL = "tunespec_spec"
FINGERPRINT_LABEL = "tunespec_fingerprint"
FINGERPRINT_CHARS = 16
RUN_ID_PLACEHOLDER = "<run-id>"


def sanitize(text: str) -> str:
    """Lowercase and replace runs of characters Vertex refuses with `-`."""
    return _INVALID.sub("-", text.strip().lower())


def fix_label(key: str, value: str) -> tuple[str, str, str | None]:
    """(key, value, problem): the sanitised label and why it is still invalid, if it is."""
    k, v = sanitize(key), sanitize(value)
    if not KEY.match(k):
        return k, v, f"label key {key!r} must start with a letter and have at most {MAX_LENGTH} characters"
    if not VALUE.match(v):
        return k, v, f"label value {value!r} must have at most {MAX_LENGTH} characters"
    return k, v, None


def run_label_value(run_id: str) -> str:
    """The run id as a label value (run ids are already lowercase; cut to the limit)."""
    return sanitize(run_id)[:MAX_LENGTH]
