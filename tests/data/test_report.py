"""The data report: token statistics, truncation, duplicates, trained tokens, files and
problem counts; exact counters from a backend; the Gemini writer; staying light."""

from __future__ import annotations

import io
import subprocess
import sys

import orjson

from tunespec.data import Conversation, DataReport, iter_conversations, validate_data, write_gemini_jsonl
from tunespec.data.tokens import estimate_tokens
from tunespec.diagnostics import Diagnostics

from . import media
from .conftest import gemini, make_spec, openai, write_jsonl


class WordCounter:
    """An exact TokenCounter stand-in with a known answer: one token per word."""

    exact = True
    name = "words"

    def __init__(self):
        self.batches: list[int] = []

    def count(self, conversations: list[Conversation]) -> list[int]:
        self.batches.append(len(conversations))
        return [sum(len(t.split()) for t in c.texts()) for c in conversations]


def _words(n: int, tag: str = "w") -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


def test_token_percentiles_truncation_and_trained_tokens(tmp_path, diagnostics):
    # 20 examples of 1..20 words (prompt 1 word + completion i-1 words)
    records = [gemini(("user", f"q{i}"), ("model", _words(i - 1))) if i > 1 else gemini(("user", "q1"), ("model", "a")) for i in range(1, 21)]
    write_jsonl(tmp_path / "t.jsonl", records)
    counter = WordCounter()
    spec = make_spec(tmp_path, "t.jsonl", max_seq_length=16, hyperparameters={"epochs": 2})
    report = validate_data(spec, None, counter, diagnostics)
    train = report.splits["train"]
    lengths = [2] + list(range(2, 21))
    assert train.examples == 20 and train.tokens_total == sum(lengths)
    assert (train.tokens_p50, train.tokens_p95, train.tokens_max) == (10, 19, 20)
    assert train.over_length == 4  # 17, 18, 19, 20 words
    truncated = sum(min(n, 16) for n in lengths)
    assert train.tokens_after_truncation == truncated
    assert report.trained_tokens == truncated * 2
    assert not report.tokens_estimated and report.token_counter == "words"
    over = [d for d in diagnostics if d.code == "TS215"]
    assert [d.location.line for d in over] == [17, 18, 19, 20] and all(not d.is_error for d in over)
    # text is cut, not left out: the torch backends train on the first 16 tokens
    assert over[0].message == "example is 17 tokens, over max_seq_length 16: it will be truncated to its first 16 tokens"
    assert "dropped" not in over[0].message and over[0].hint == "raise `data.max_seq_length` or shorten the example"


def test_over_long_examples_with_media_are_reported_as_dropped_not_truncated(tmp_path, diagnostics):
    """Image, audio and document examples that do not fit are left out whole (cutting
    through media tokens is never done): TS215 says so, and names what shrinks them."""
    (tmp_path / "a.png").write_bytes(media.png())
    (tmp_path / "a.pdf").write_bytes(media.pdf())
    image = {"contents": [{"role": "user", "parts": [{"text": "what colour?"}, {"fileData": {"mimeType": "image/png", "fileUri": "a.png"}}]},
                          {"role": "model", "parts": [{"text": "red"}]}]}
    document = {"contents": [{"role": "user", "parts": [{"text": "summarise"}, {"fileData": {"mimeType": "application/pdf", "fileUri": "a.pdf"}}]},
                             {"role": "model", "parts": [{"text": "hello"}]}]}
    short = gemini(("user", "hi"), ("model", "hello"))
    for modality, record, less in (("image", image, "use fewer or smaller images"), ("document", document, "use fewer PDF pages")):
        write_jsonl(tmp_path / f"{modality}.jsonl", [short, record])
        found = Diagnostics()
        report = validate_data(make_spec(tmp_path, f"{modality}.jsonl", modality=modality, max_seq_length=64), None, None, found)
        [d] = [d for d in found if d.code == "TS215"]
        assert (d.location.file, d.location.line, d.is_error) == (str(tmp_path / f"{modality}.jsonl"), 2, False)
        assert "over max_seq_length 64: it will be dropped from training" in d.message and "truncated" not in d.message
        assert d.hint == f"raise `data.max_seq_length`, shorten its text, or {less}"
        train = report.splits["train"]
        assert train.over_length == 1
        # The dropped example trains no tokens: only the short one counts towards trained tokens.
        assert train.tokens_after_truncation == train.tokens_total - train.tokens_max < 64
        assert report.trained_tokens == train.tokens_after_truncation * 3  # the default 3 epochs
        assert dict(report.summary_rows())["train over max_seq_length"] == "1 (dropped from training)"


def test_over_long_examples_on_a_backend_without_truncation_train_whole(tmp_path, diagnostics):
    """A backend that does not apply max_seq_length (Vertex: `long_examples: kept`) is not
    said to cut or drop anything; its own limit, when exceeded, is what is reported."""
    from tunespec.data import DataRules, rules_for

    assert rules_for("text").merge(DataRules(long_examples="kept")).long_examples == "kept"
    assert rules_for("image").long_examples == "dropped" and rules_for("text").merge(DataRules()).long_examples == "truncated"
    write_jsonl(tmp_path / "t.jsonl", [gemini(("user", "q"), ("model", _words(30))), gemini(("user", "q"), ("model", _words(80)))])
    validate_data(make_spec(tmp_path, "t.jsonl", max_seq_length=16), DataRules(long_examples="kept", max_tokens_per_example=64), WordCounter(), diagnostics)
    report = validate_data(make_spec(tmp_path, "t.jsonl", max_seq_length=16), DataRules(long_examples="kept", max_tokens_per_example=64),
                           WordCounter(), Diagnostics())
    assert report.splits["train"].tokens_after_truncation == report.splits["train"].tokens_total  # trained whole
    assert dict(report.summary_rows())["train over max_seq_length"].endswith("(trained whole: this backend does not cut them)")
    kept, over = [d for d in diagnostics if d.code == "TS215"]
    assert kept.location.line == 1 and not kept.is_error
    assert "does not cut examples to max_seq_length, it trains on the whole example" in kept.message
    assert "truncated" not in kept.message and "dropped" not in kept.message
    assert (over.location.line, over.is_error, over.message) == (2, True, "example is 81 tokens, over this backend's limit of 64")


def test_trained_tokens_follow_max_steps(tmp_path, diagnostics):
    write_jsonl(tmp_path / "t.jsonl", [gemini(("user", "q"), ("model", _words(9))) for _ in range(16)])  # 10 tokens each
    spec = make_spec(tmp_path, "t.jsonl", hyperparameters={"max_steps": 3, "batch_size": 4, "packing": False})
    report = validate_data(spec, None, WordCounter(), diagnostics)
    # 16 examples / batch 4 = 4 steps per epoch; 3 steps = 3/4 of an epoch of 160 tokens
    assert report.trained_tokens == 120
    assert "3 steps" in report.trained_tokens_basis


def test_counter_gets_batches(tmp_path, diagnostics):
    write_jsonl(tmp_path / "t.jsonl", [gemini(("user", "q"), ("model", "a"))] * 2500)
    counter = WordCounter()
    validate_data(make_spec(tmp_path, "t.jsonl"), None, counter, diagnostics)
    assert counter.batches == [1024, 1024, 452]


def test_hard_token_limit_of_a_backend_is_an_error_with_exact_counts(tmp_path, diagnostics):
    from tunespec.data import DataRules

    write_jsonl(tmp_path / "t.jsonl", [gemini(("user", "q"), ("model", _words(30))), gemini(("user", "q"), ("model", "a"))])
    validate_data(make_spec(tmp_path, "t.jsonl", max_seq_length=64), DataRules(max_tokens_per_example=20), WordCounter(), diagnostics)
    [d] = list(diagnostics)
    assert (d.code, d.is_error, d.location.line) == ("TS215", True, 1)


def test_duplicates_between_train_and_validation_across_formats(tmp_path, diagnostics):
    write_jsonl(tmp_path / "val.jsonl", [openai(("user", "same question"), ("assistant", "same answer")), openai(("user", "only val"), ("assistant", "x"))])
    write_jsonl(
        tmp_path / "train.jsonl",
        [gemini(("user", "other"), ("model", "y")), gemini(("user", "same question"), ("model", "same answer")), gemini(("user", "same question"), ("model", "different"))],
    )
    report = validate_data(make_spec(tmp_path, "train.jsonl", validation="val.jsonl"), None, None, diagnostics)
    assert report.duplicates_between_splits == 1
    [d] = [d for d in diagnostics if d.code == "TS218"]
    assert d.location.file.endswith("train.jsonl") and d.location.line == 2
    assert report.splits["validation"].examples == 2


def test_inline_images_of_the_same_size_are_not_duplicates(tmp_path, diagnostics):
    """Two different inline images that happen to have the same byte size are different
    examples; the same image (same data) is a duplicate."""
    import base64

    def example(data: bytes) -> dict:
        inline = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(data).decode()}}
        return {"contents": [{"role": "user", "parts": [inline, {"text": "which?"}]}, {"role": "model", "parts": [{"text": "a"}]}]}

    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
    other = b"\x89PNG\r\n\x1a\n" + b"\x01" * 24
    write_jsonl(tmp_path / "val.jsonl", [example(png)])
    write_jsonl(tmp_path / "train.jsonl", [example(other), example(png)])
    report = validate_data(make_spec(tmp_path, "train.jsonl", validation="val.jsonl", modality="image"), None, None, diagnostics)
    assert report.duplicates_between_splits == 1
    [d] = [d for d in diagnostics if d.code == "TS218"]
    assert d.location.line == 2


def test_estimated_counts_are_labelled_everywhere(tmp_path, diagnostics):
    write_jsonl(tmp_path / "t.jsonl", [gemini(("user", "x" * 40), ("model", "y" * 40), system="s" * 4)])
    report = validate_data(make_spec(tmp_path, "t.jsonl", validation="t.jsonl"), None, None, diagnostics)
    assert report.tokens_estimated
    # 84 characters / 4 + 4 per turn x (2 turns + system) + 2 per example
    assert report.splits["train"].tokens_total == 21 + 12 + 2
    rows = dict(report.summary_rows())
    assert rows["train tokens"] == "~35" and rows["train tokens/example"].startswith("p50 ~35")
    assert rows["token counts"].startswith("estimated")
    assert rows["duplicates train/validation"] == "1"
    assert "TS218 x1" in rows["problems"]


def test_report_round_trips_through_json(tmp_path, diagnostics):
    write_jsonl(tmp_path / "t.jsonl", [gemini(("user", "q"), ("model", "a")), {"contents": 1}])
    report = validate_data(make_spec(tmp_path, "t.jsonl"), None, None, diagnostics)
    data = orjson.loads(report.model_dump_json())
    assert DataReport.model_validate(data) == report
    assert data["problems"] == {"TS203": 1} and data["errors"] == 1
    [f] = data["files"]
    assert f["format"] == "gemini" and f["examples"] == 1 and f["bytes"] == (tmp_path / "t.jsonl").stat().st_size


def test_gemini_writer_round_trips(tmp_path):
    records = [
        {
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "gs://b/x.png"}}]},
                {"role": "assistant", "content": "ok"},
            ]
        },
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + media.b64(media.png())}}]}, {"role": "assistant", "content": "z"}]},
    ]
    write_jsonl(tmp_path / "t.jsonl", records)
    spec = make_spec(tmp_path, "t.jsonl", modality="image")
    out = io.BytesIO()
    assert write_gemini_jsonl(iter_conversations(spec, "train"), out, map_uri=lambda uri, conv: uri.replace("gs://b/", "gs://staged/")) == 2
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0] == {
        "systemInstruction": {"role": "system", "parts": [{"text": "sys"}]},
        "contents": [
            {"role": "user", "parts": [{"text": "look"}, {"fileData": {"mimeType": "image/png", "fileUri": "gs://staged/x.png"}}]},
            {"role": "model", "parts": [{"text": "ok"}]},
        ],
    }
    assert lines[1]["contents"][0]["parts"] == [{"inlineData": {"mimeType": "image/png", "data": media.b64(media.png())}}]
    # what the writer produced is itself valid Gemini data
    (tmp_path / "out.jsonl").write_bytes(out.getvalue())
    again = list(iter_conversations(make_spec(tmp_path, "out.jsonl"), "train"))
    assert [estimate_tokens(c) for c in again] == [estimate_tokens(c) for c in iter_conversations(spec, "train")]


def test_validating_local_jsonl_imports_nothing_heavy(tmp_path):
    write_jsonl(tmp_path / "t.jsonl", [gemini(("user", "q"), ("model", "a"))])
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, '.');"
        "from tests.data.conftest import make_spec;"
        # only tunespec's own data plugin: backends' import costs are their own tests' business
        "from tunespec.plugins.host import PluginHost, reset_plugin_host; reset_plugin_host(PluginHost(entry_points_=[]));"
        "from tunespec.data import validate_data; from tunespec.diagnostics import Diagnostics;"
        f"validate_data(make_spec(Path({str(tmp_path)!r}), 't.jsonl'), None, None, Diagnostics());"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'ray', 'pyarrow', 'transformers') or m.startswith(('google.cloud.storage', 'google.protobuf'))];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_validation_estimate_equals_the_estimator(tmp_path, diagnostics):
    """Validation gathers the estimator's inputs during the rule pass; the figure must be
    the one `EstimatedTokenCounter` gives for the same conversations."""
    (tmp_path / "a.png").write_bytes(media.png())
    records = [
        {
            "systemInstruction": {"parts": [{"text": "sys  "}]},
            "contents": [
                {"role": "user", "parts": [{"text": "look"}, {"fileData": {"mimeType": "image/png", "fileUri": "a.png"}}, {"inlineData": {"mimeType": "audio/wav", "data": media.b64(media.wav())}}]},
                {"role": "model", "parts": [{"text": "   "}, {"text": "ok" * 50}]},
            ],
        },
        gemini(("user", "x" * 33), ("model", "y")),
    ]
    write_jsonl(tmp_path / "t.jsonl", records)
    spec = make_spec(tmp_path, "t.jsonl", modality="image", max_seq_length=100)
    report = validate_data(spec, None, None, diagnostics)
    expected = [estimate_tokens(c) for c in iter_conversations(spec, "train")]
    assert report.splits["train"].tokens_total == sum(expected) and report.splits["train"].tokens_max == max(expected)
    assert report.splits["train"].over_length == sum(n > 100 for n in expected) == 1


def test_progress_follows_the_bytes_of_each_file(tmp_path, diagnostics):
    from contextlib import contextmanager

    from tunespec.progress import Progress

    class Recording(Progress):
        def __init__(self):
            super().__init__(enabled=False, quiet=True)
            self.tasks: dict[str, list] = {}

        @contextmanager
        def task(self, description, total=None):
            advanced = self.tasks.setdefault(description, [total, 0])

            class T:
                def advance(self, n=1):
                    advanced[1] += n

            yield T()

    write_jsonl(tmp_path / "t.jsonl", [gemini(("user", "q" * 100), ("model", "a"))] * 50)
    progress = Recording()
    validate_data(make_spec(tmp_path, "t.jsonl"), None, None, diagnostics, progress)
    size = (tmp_path / "t.jsonl").stat().st_size
    assert progress.tasks == {"validating train t.jsonl": [size, size]}
