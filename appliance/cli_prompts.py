"""`switchboard prompt set|list|play|reset`: the voice prompts, the box's own and the owner's."""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .cli_support import UsageError, data_dir, print_table
from .config import load_settings
from .media import prompt_texts
from .media.prompts import DEFAULTS_DIR, PromptError, PromptLibrary, save_wav
from .store import directory
from .store.db import open_database
from .provisioning import PROMPT_TEXTS, PROMPT_VOICE


def add_commands(group, leaf) -> None:  # type: ignore[no-untyped-def]
    """Add the `prompt` command group (group/leaf as in cli._parser)."""
    prompt = group("prompt", "Voice prompts: the box's and your own (a second menu's words, say).")
    cmd = leaf(prompt, "set", _set, "Replace a prompt with a WAV recording (any rate, mono or stereo; stored "
                                    "as 8 kHz mono). Your own prompts take any lower-case name.")
    cmd.add_argument("name", help="prompt name, e.g. greeting, menu, hold_music, or your own like support_menu")
    cmd.add_argument("file", type=Path, help="the WAV file")
    cmd = leaf(prompt, "list", _list, "List the prompts, where each comes from, and their words.")
    cmd = leaf(prompt, "play", _play, "Hear a prompt as callers do (or write it to a WAV file with --out).")
    cmd.add_argument("name")
    cmd.add_argument("--out", type=Path, help="write the 8 kHz WAV here instead of playing it")
    cmd = leaf(prompt, "reset", _reset, "Forget your recording of a prompt: its spoken words play again.")
    cmd.add_argument("name")


def _library(args: argparse.Namespace) -> PromptLibrary:
    """The box's prompt library with the provisioned voice and words (defaults when nothing is set up)."""
    settings = load_settings(data_dir(args), {})
    voice, texts = settings.prompt_voice, None
    if settings.db_path.exists():
        db = open_database(settings.db_path)
        voice = directory.get_setting(db, PROMPT_VOICE) or voice
        texts = directory.get_setting(db, PROMPT_TEXTS) or None
    return PromptLibrary(settings.data_dir / "prompts", voice=voice, texts=texts)


def _set(args: argparse.Namespace) -> int:
    try:
        prompt = _library(args).set(args.name, args.file)
    except PromptError as exc:
        raise UsageError(str(exc)) from None
    print(f"prompt {prompt.name}: {prompt.duration:.1f} s, stored as 8 kHz mono")
    return 0


def _source(library: PromptLibrary, name: str) -> str:
    if (library.directory / f"{name}.wav").is_file():
        return "your recording"
    if name in prompt_texts.LOOPED:
        return "shipped" if (DEFAULTS_DIR / f"{name}.wav").is_file() else "built-in music"
    if name in library.texts:
        return "spoken (espeak-ng)"
    return "MISSING: set a recording or give its words under [prompts]"


def _list(args: argparse.Namespace) -> int:
    library = _library(args)
    own = {p.stem for p in library.directory.glob("*.wav") if prompt_texts.is_prompt_name(p.stem)}
    names = sorted(set(library.texts) | prompt_texts.LOOPED | own)
    rows = []
    for name in names:
        words = library.texts.get(name, "")
        rows.append([name, _source(library, name), words if len(words) <= 60 else words[:57] + "..."])
    print_table(("PROMPT", "FROM", "WORDS"), rows)
    return 0


def _play(args: argparse.Namespace) -> int:
    library = _library(args)
    try:
        prompt = library.get(args.name)
    except PromptError as exc:
        raise UsageError(str(exc)) from None
    if args.out is not None:
        save_wav(args.out, prompt.pcm)
        print(f"{args.name}: {prompt.duration:.1f} s written to {args.out}")
        return 0
    player = shutil.which("aplay") or shutil.which("paplay")
    if player is None:
        raise UsageError("no audio player here (aplay or paplay): write the prompt to a file with --out FILE.wav")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / f"{args.name}.wav"
        save_wav(wav, prompt.pcm)
        return subprocess.run([player, str(wav)], check=False).returncode


def _reset(args: argparse.Namespace) -> int:
    if not prompt_texts.is_prompt_name(args.name):
        raise UsageError(f'"{args.name}" is not a prompt name')
    library = _library(args)
    recording = library.directory / f"{args.name}.wav"
    if not recording.is_file():
        print(f"{args.name} has no recording of yours; nothing to reset", file=sys.stderr)
        return 1
    recording.unlink()
    print(f"{args.name}: your recording is gone; {_source(library, args.name)} from now on "
          "(a running box picks it up at its next start)")
    return 0
