"""Tokenised data on disk: streamed into a cache once, reused by later runs, rebuilt when
anything that decides the tokens changes, never seen half-written; training on it gives
exactly what training on in-memory examples gave."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.local.conftest import PEFT

from tunespec_local.encode import ChatTokenizer
from tunespec_local.encoded import EncodedSequences, SplitWriter, is_complete

pytestmark = pytest.mark.slow


def cache_folders(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "cache" / "encoded"
    return {p.name: p for p in root.iterdir()} if root.is_dir() else {}


def checked_context(spec_path: Path):
    """The spec after validation, as `apply` hands it to the backend (spec + data report)."""
    from tunespec.pipeline import check_spec, load_specs
    from tunespec.plugins.host import plugin_host
    from tunespec.progress import Progress

    host = plugin_host()
    [spec], problems = load_specs([spec_path], host)
    assert not problems
    checked = check_spec(spec, host, None, Progress(enabled=False))
    assert checked.ok, checked.diagnostics
    return SimpleNamespace(spec=checked.spec, data=checked.data)


def test_second_apply_reuses_the_cache_without_tokenising(project, cli, tmp_path):
    code, output = cli("apply", project.spec(steps=2), "--yes")
    assert code == 0, output
    assert "examples tokenised in" in output
    folders = cache_folders(tmp_path)
    assert len(folders) == 2  # train and validation
    before = {name: (folder / "tokens.bin").stat() for name, folder in folders.items()}

    code, output = cli("apply", project.spec(steps=3), "--yes")  # another run of the same data
    assert code == 0, output
    assert "examples tokenised in" not in output
    assert "tokenised examples reused from" in output
    after = {name: (folder / "tokens.bin").stat() for name, folder in cache_folders(tmp_path).items()}
    assert after.keys() == before.keys()
    assert all((after[k].st_ino, after[k].st_mtime_ns) == (before[k].st_ino, before[k].st_mtime_ns) for k in before)
    [_, run] = project.runs()
    assert json.loads((run / "manifest.json").read_text())["metrics"]["train_examples"] == 32


def test_cache_is_rebuilt_when_data_tokenizer_template_or_length_change(project, tiny_model, tmp_path):
    from tunespec_local.run import encoded_split

    def train_folder(spec_path: Path, tokenizer: ChatTokenizer) -> str:
        logs: list[str] = []
        split = encoded_split(checked_context(spec_path), tokenizer, "train", logs.append)
        return split.folder

    tokenizer = ChatTokenizer.from_folder(tiny_model)
    spec = project.spec()
    first = train_folder(spec, tokenizer)
    assert train_folder(spec, tokenizer) == first  # unchanged inputs: the same folder

    template = tokenizer.chat_template.replace("<|im_start|>assistant", "<|im_start|>bot")
    assert template != tokenizer.chat_template
    seen = {first, train_folder(spec, ChatTokenizer.from_folder(tiny_model, template))}

    other_model = tmp_path / "other-model"
    shutil.copytree(tiny_model, other_model)
    vocab = json.loads((other_model / "tokenizer.json").read_text())
    vocab["added_tokens"].append({**vocab["added_tokens"][-1], "id": vocab["added_tokens"][-1]["id"] + 1, "content": "<|extra|>"})
    (other_model / "tokenizer.json").write_text(json.dumps(vocab))
    seen.add(train_folder(spec, ChatTokenizer.from_folder(other_model)))

    spec.write_text(spec.read_text().replace("max_seq_length: 256", "max_seq_length: 64"))
    seen.add(train_folder(spec, tokenizer))
    spec.write_text(spec.read_text().replace("max_seq_length: 64", "max_seq_length: 256"))

    lines = (project.root / "train.jsonl").read_text().splitlines()
    (project.root / "train.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    seen.add(train_folder(spec, tokenizer))
    assert len(seen) == 5  # each change: a new cache, never the stale one
    assert len(EncodedSequences(train_folder(spec, tokenizer))) == 31


def test_interrupted_write_leaves_no_cache(tiny_model, tmp_path):
    tokenizer = ChatTokenizer.from_folder(tiny_model)
    final = tmp_path / "encoded" / "key"
    example = tokenizer_example(tokenizer)

    with pytest.raises(KeyboardInterrupt):
        with SplitWriter(final, pairs=False) as writer:
            for i in range(100):
                writer.add(example)
                if i == 50:
                    raise KeyboardInterrupt
    assert not final.exists() and not is_complete(final)
    assert list(final.parent.iterdir()) == []  # the temp folder went too

    # A writer killed outright (no cleanup) leaves its temp folder; it is never read as a
    # cache, and the next writer of that key removes it.
    leftover = final.parent / f".key.{dead_pid()}.abc.tmp"
    leftover.mkdir()
    (leftover / "tokens.bin").write_bytes(b"\0" * 16)
    assert not is_complete(final)
    with SplitWriter(final, pairs=False) as writer:
        writer.add(example)
        writer.commit()
    assert [p.name for p in final.parent.iterdir()] == ["key"]
    assert list(EncodedSequences(final)) == [example]


def tokenizer_example(tokenizer: ChatTokenizer):
    from tunespec.data import Conversation, Part, Turn

    conversation = Conversation(system=[], turns=[Turn("user", [Part.of_text("hello there")]), Turn("model", [Part.of_text('{"a": 1}')])])
    return tokenizer.encode(conversation, 256)


def dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_cached_sequences_read_back_exactly_and_train_to_the_same_losses(tiny_model, project, tmp_path):
    """Training on the on-disk examples is training on the in-memory ones: same batches,
    same losses, same order (the epoch shuffle is the one a list got)."""
    from tests.local.test_train import _data

    from tunespec_local.training import LocalEnv, TrainConfig, TrainData, default_device, train
    from tunespec_local.training.batching import epoch_order

    tokenizer, data = _data(tiny_model, project)
    stored = TrainData(*(write(tmp_path / "encoded" / split, getattr(data, split)) for split in ("train", "validation")))
    assert list(stored.train) == data.train and list(stored.validation) == data.validation
    assert stored.train[-1] == data.train[-1] and stored.train[3:6] == data.train[3:6]

    for n, seed, epoch in ((32, 7, 0), (1000, 3, 2)):
        expected = list(range(n))
        random.Random(seed + epoch).shuffle(expected)
        assert list(epoch_order(n, seed, epoch)) == expected

    losses = []
    for name, train_data in (("memory", data), ("disk", stored)):
        config = TrainConfig(model_path=str(tiny_model), output_dir=str(tmp_path / name), method="peft", lora_rank=4, lora_dropout=0.0,
                             learning_rate=1e-2, batch_size=4, micro_batch_size=2, epochs=2, checkpoint_every=0,
                             pad_token_id=tokenizer.pad_token_id, seed=7)
        train(config, train_data, LocalEnv(tmp_path / name, default_device("cpu")))
        losses.append([(r["step"], r["train_loss"], r.get("eval_loss")) for r in map(json.loads, (tmp_path / name / "metrics.jsonl").read_text().splitlines())])
    assert len(losses[0]) == 16
    assert losses[0] == losses[1]


def write(folder: Path, examples: list) -> EncodedSequences:
    with SplitWriter(folder, pairs=False) as writer:
        for e in examples:
            writer.add(e)
        writer.commit()
    return EncodedSequences(folder)


def test_ctrl_c_mid_epoch_on_cached_data_resumes_at_the_next_step(tiny_model, project, tmp_path):
    """Interrupted at step 5 of an 8-step epoch, a second `train` on the same cache finishes
    the run with the losses of a run never interrupted (same examples, same order)."""
    from tests.local.test_train import _data

    from tunespec_local.training import LocalEnv, TrainConfig, TrainData, default_device, train

    tokenizer, data = _data(tiny_model, project)
    stored = TrainData(write(tmp_path / "encoded" / "train", data.train), [])

    class CtrlCAtStep5(LocalEnv):
        def report(self, metrics):
            super().report(metrics)
            if metrics["step"] == 5:
                raise KeyboardInterrupt

    def run(name: str, env_type=LocalEnv) -> list[tuple]:
        config = TrainConfig(model_path=str(tiny_model), output_dir=str(tmp_path / name), method="peft", lora_rank=4, lora_dropout=0.0,
                             learning_rate=1e-2, batch_size=4, micro_batch_size=2, max_steps=12, checkpoint_every=0,
                             pad_token_id=tokenizer.pad_token_id, seed=7, validation_loss=False)
        env = env_type(tmp_path / name, default_device("cpu"))
        checkpoint = env.latest_checkpoint()
        if checkpoint is not None:  # what `apply` does on resume (run._prepare_run_folder)
            env.truncate_metrics_after(json.loads((checkpoint / "checkpoint.json").read_text())["step"])
        result = train(config, stored, env)
        assert result.resumed_from == (5 if env_type is LocalEnv and name == "resumed" else 0)
        return [(r["step"], r["train_loss"]) for r in map(json.loads, (tmp_path / name / "metrics.jsonl").read_text().splitlines())]

    straight = run("straight")
    with pytest.raises(KeyboardInterrupt):
        run("resumed", CtrlCAtStep5)
    assert len(sorted((tmp_path / "resumed" / "checkpoints").glob("step-*"))) == 1
    assert run("resumed") == straight
    assert [s for s, _ in straight] == list(range(1, 13))


def test_batch_encoding_gives_what_one_at_a_time_gives(tiny_model, project):
    """The cache tokenises `BATCH` conversations per `encode_batch` call; the result must be
    `encode`'s, example for example (truncation included), and `encode_pair`'s for pairs."""
    from tunespec.data import iter_conversations

    tokenizer = ChatTokenizer.from_folder(tiny_model)
    conversations = list(iter_conversations(checked_context(project.spec()).spec, "train"))
    for max_len in (256, 40):
        assert tokenizer.encode_many(conversations, max_len) == [tokenizer.encode(c, max_len) for c in conversations]
    assert any(e.truncated for e in tokenizer.encode_many(conversations, 40))
