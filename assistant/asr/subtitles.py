"""Transcripts as text, JSON, SRT and WebVTT."""

from __future__ import annotations

import json
import textwrap
from typing import Iterable, List

from .engine import Segment, Transcript

MAX_CUE_SECONDS = 7.0
LINE_CHARS = 42  # the usual subtitle line length
MAX_LINES = 2

FORMATS = ("text", "json", "srt", "vtt")


def render(transcript: Transcript, fmt: str) -> str:
    if fmt == "text":
        return transcript.text + "\n"
    if fmt == "json":
        return json.dumps(to_json(transcript), ensure_ascii=False) + "\n"
    if fmt == "srt":
        return to_srt(cues(transcript.segments))
    if fmt == "vtt":
        return to_vtt(cues(transcript.segments))
    raise ValueError(f"unknown format '{fmt}' (one of {', '.join(FORMATS)})")


def to_json(transcript: Transcript) -> dict:
    # `timestamp` is what Hugging Face clients read; `timestamps` is the ASR Inference API's name.
    return {
        "text": transcript.text,
        "chunks": [
            {"text": s.text, "timestamp": [s.start, s.end], "timestamps": [s.start, s.end]}
            for s in transcript.segments
        ],
    }


def cues(segments: Iterable[Segment]) -> List[Segment]:
    """Split segments into cues of at most 7 s and two lines, timing words by their share of
    the characters (whisper's segment times are exact only at segment boundaries)."""
    out: List[Segment] = []
    for seg in segments:
        words = seg.text.split()
        if not words:
            continue
        pieces = _split_words(words, seg.end - seg.start)
        total_chars = sum(len(" ".join(p)) + 1 for p in pieces)
        t = seg.start
        for piece in pieces:
            share = (len(" ".join(piece)) + 1) / total_chars
            end = min(seg.end, t + share * (seg.end - seg.start))
            out.append(Segment(round(t, 3), round(end, 3), " ".join(piece)))
            t = end
    return out


def _split_words(words: List[str], duration: float) -> List[List[str]]:
    text = " ".join(words)
    n_chars = max(1, len(text))
    max_chars = LINE_CHARS * MAX_LINES
    # enough pieces that each fits both the length and the duration limit
    n = max(1, -(-len(text) // max_chars), int(-(-duration // MAX_CUE_SECONDS)))
    while True:
        pieces: List[List[str]] = []
        current: List[str] = []
        size = 0
        budget = n_chars / n
        for w in words:
            if current and size + len(w) > budget:
                pieces.append(current)
                current, size = [], 0
            current.append(w)
            size += len(w) + 1
        pieces.append(current)
        fits = all(
            len(_wrap(" ".join(p))) <= MAX_LINES
            and duration * (len(" ".join(p)) + 1) / (n_chars + len(pieces)) <= MAX_CUE_SECONDS
            for p in pieces
        )
        if fits or n >= len(words):
            return pieces
        n += 1


def _wrap(text: str) -> List[str]:
    return textwrap.wrap(text, LINE_CHARS) or [""]


def to_srt(cue_list: List[Segment]) -> str:
    blocks = []
    for i, c in enumerate(cue_list, 1):
        lines = "\n".join(_wrap(c.text))
        blocks.append(f"{i}\n{timestamp(c.start, ',')} --> {timestamp(c.end, ',')}\n{lines}\n")
    return "\n".join(blocks)


def to_vtt(cue_list: List[Segment]) -> str:
    blocks = ["WEBVTT\n"]
    for i, c in enumerate(cue_list, 1):
        lines = "\n".join(_wrap(c.text))
        blocks.append(f"{i}\n{timestamp(c.start, '.')} --> {timestamp(c.end, '.')}\n{lines}\n")
    return "\n".join(blocks)


def timestamp(seconds: float, separator: str) -> str:
    ms = int(round(max(0.0, seconds) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{separator}{ms:03d}"
