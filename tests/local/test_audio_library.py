"""Audio needs a decoder library (`soundfile`, with its libsndfile). When it is missing the
user is told which package to install and how, once, never that each clip is broken
(TS236 is for bytes that do not decode)."""

from __future__ import annotations

import base64
import importlib.abc
import importlib.machinery
import json
import sys
import types

import pytest

from tests.data.media import wav
from tests.local import test_audio
from tunespec import DiagnosticError
from tunespec_local.media.encode import MediaChatEncoder
from tunespec_local.media.load import Media


class _Processor:
    audio_token = "<audio>"


def _expand(data: bytes):
    """The diagnostic `MediaChatEncoder.expand` raises for one clip at train.jsonl:3."""
    encoder = MediaChatEncoder(chat=None, folder=".", reader=None)  # type: ignore[arg-type]
    encoder.__dict__["processor"] = _Processor()
    with pytest.raises(DiagnosticError) as caught:
        encoder.expand(Media("audio", data, "$.contents[0].parts[0]"), types.SimpleNamespace(file="train.jsonl", line=3))
    [diagnostic] = caught.value.diagnostics
    return diagnostic


class _NoLibsndfile(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`import soundfile` as on a machine where the package is there but libsndfile is not:
    soundfile's own import raises OSError."""

    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.ModuleSpec(name, self) if name == "soundfile" else None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise OSError("sndfile library not found using ctypes.util.find_library")


def test_a_missing_soundfile_is_named_with_its_install_command_not_a_broken_clip(monkeypatch):
    monkeypatch.setitem(sys.modules, "soundfile", None)  # `import soundfile` raises ImportError
    d = _expand(wav())
    assert d.code == "TS300" and d.code != "TS236"
    assert "decoding audio needs the soundfile package, which is not installed" in d.message
    assert d.hint.startswith("`pip install 'tunespec[local]'`") and "soundfile" in d.hint
    assert "broken" not in d.message + d.hint and "re-export" not in d.hint
    assert d.location.subject == "soundfile" and d.location.file is None  # not the data line's fault


def test_a_soundfile_without_its_libsndfile_is_named_too(monkeypatch):
    monkeypatch.delitem(sys.modules, "soundfile", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoLibsndfile(), *sys.meta_path])
    d = _expand(wav())
    assert d.code == "TS300" and "libsndfile library, which cannot be loaded" in d.message and "OSError" in d.message
    assert "pip install --force-reinstall soundfile" in d.hint and "libsndfile1" in d.hint


def test_a_broken_clip_is_still_ts236_at_its_line():
    d = _expand(wav()[:12] + bytes(range(256)) * 4)  # RIFF....WAVE then garbage
    assert d.code == "TS236" and (d.location.file, d.location.line, d.location.path) == ("train.jsonl", 3, "$.contents[0].parts[0]")


def test_validate_says_audio_data_needs_soundfile_at_the_modality_line(tmp_path, tiny_model, cli, monkeypatch):
    """Before any run: `validate` of an audio spec on a machine without soundfile is one
    TS300 at `data.modality`, with the pip command of the extra that brings it."""
    clip = {"inlineData": {"mimeType": "audio/wav", "data": base64.b64encode(wav()).decode()}}
    for split in ("train", "validation"):
        (tmp_path / f"{split}.jsonl").write_text(json.dumps(test_audio.gemini("low", clip)) + "\n")
    spec = tmp_path / "tunespec.yaml"
    spec.write_text(test_audio.SPEC.format(model=tiny_model))
    monkeypatch.setitem(sys.modules, "soundfile", None)
    code, output = cli("validate", spec)
    assert code != 0
    assert f"{spec.name}:8:13: error TS300" in output  # `modality: audio`
    assert "audio data needs the soundfile package to decode its clips, which is not installed" in output
    assert "pip install 'tunespec[local]'" in output
    assert "TS236" not in output
