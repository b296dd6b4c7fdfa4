"""The music bed: synthesised here, offline, from the brief's mood (no downloaded audio, so
nothing to license): a chord progression as a soft pad, an arpeggio of plucked notes and,
for the livelier moods, a light pulse. 48 kHz stereo, deterministic (the same mood and
length give the same samples), with fades in and out; its loudness is set afterwards
(`loudness.py`)."""

import functools
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 48_000
FADE_IN, FADE_OUT = 0.4, 0.8  # seconds (ADS.md: >= 0.3 s)


@dataclass(frozen=True)
class Mood:
    bpm: float
    chords: tuple[tuple[int, ...], ...]  # MIDI notes, one chord per bar
    arpeggio: tuple[int, ...]  # chord-tone indices per eighth note
    pulse: float  # kick level, 0 = none
    brightness: float  # harmonics of the pluck


MOODS: dict[str, Mood] = {
    # I - V - vi - IV in C major, bright plucks on eighths, a light four-on-the-floor.
    "upbeat": Mood(
        116, ((60, 64, 67), (55, 59, 62), (57, 60, 64), (53, 57, 60)), (0, 1, 2, 1), 0.5, 0.6
    ),
    # Imaj7 - IVmaj7 in F, slow, no drums.
    "calm": Mood(76, ((53, 57, 60, 64), (58, 62, 65, 69)), (0, 2, 1, 3), 0.0, 0.3),
    # i - VI - III - VII in A minor, driving eighths and a firm pulse.
    "bold": Mood(
        100, ((57, 60, 64), (53, 57, 60), (48, 52, 55), (55, 59, 62)), (0, 2, 1, 2), 0.8, 0.8
    ),
}


def _hz(note: float) -> float:
    return float(440.0 * 2 ** ((note - 69) / 12))


@functools.lru_cache(maxsize=256)
def _tone(freq: float, seconds: float, harmonics: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    wave_ = np.sin(2 * np.pi * freq * t)
    for n in (2, 3, 4):
        wave_ += harmonics / n**1.5 * np.sin(2 * np.pi * freq * n * t)
    return wave_


@functools.lru_cache(maxsize=16)
def synthesise(mood_name: str, duration: float) -> np.ndarray:
    """Samples (n, 2) in -1..1 for `duration` seconds (kept: the same few lengths and moods
    come back job after job)."""
    mood = MOODS.get(mood_name, MOODS["upbeat"])
    n = round(duration * RATE)
    left, right = np.zeros(n), np.zeros(n)
    beat = 60.0 / mood.bpm
    bar = 4 * beat
    # The pad: each chord for a bar, swelling in and out, a little detuned across the sides.
    for b in range(int(duration / bar) + 1):
        chord = mood.chords[b % len(mood.chords)]
        start = int(b * bar * RATE)
        length = min(int(bar * RATE), n - start)
        if length <= 0:
            break
        env = np.sin(np.linspace(0, np.pi, length)) ** 0.7
        for note in chord:
            seconds = length / RATE
            left[start : start + length] += 0.10 * env * _tone(_hz(note - 12), seconds, 0.2)
            right[start : start + length] += (
                0.10 * env * _tone(_hz(note - 12) * 1.003, seconds, 0.2)
            )
    # The arpeggio: eighth notes of the bar's chord, an octave up, plucked (fast decay).
    eighth = beat / 2
    pluck_len = int(min(eighth * 1.8, 0.5) * RATE)
    decay = np.exp(-np.arange(pluck_len) / RATE * 9)
    for k in range(int(duration / eighth) + 1):
        start = int(k * eighth * RATE)
        if start >= n:
            break
        chord = mood.chords[int(k * eighth / bar) % len(mood.chords)]
        note = chord[mood.arpeggio[k % len(mood.arpeggio)] % len(chord)] + 12
        tone = decay * _tone(_hz(note), pluck_len / RATE, mood.brightness)
        end = min(start + pluck_len, n)
        pan = 0.35 if k % 2 else 0.65
        left[start:end] += 0.16 * (1 - pan) * 2 * tone[: end - start]
        right[start:end] += 0.16 * pan * 2 * tone[: end - start]
    # The pulse: a soft sine kick on every beat.
    if mood.pulse:
        kick_len = int(0.18 * RATE)
        t = np.arange(kick_len) / RATE
        kick = np.sin(2 * np.pi * (50 + 60 * np.exp(-t * 30)) * t) * np.exp(-t * 18)
        for k in range(int(duration / beat) + 1):
            start = int(k * beat * RATE)
            end = min(start + kick_len, n)
            if start >= n:
                break
            left[start:end] += mood.pulse * 0.35 * kick[: end - start]
            right[start:end] += mood.pulse * 0.35 * kick[: end - start]
    samples = np.stack([left, right], axis=1)
    # Fades, then a gentle peak ceiling (tanh) so the crest stays moderate.
    fade = np.ones(n)
    fi, fo = min(int(FADE_IN * RATE), n), min(int(FADE_OUT * RATE), n)
    fade[:fi] = np.linspace(0, 1, fi)
    fade[n - fo :] = np.minimum(fade[n - fo :], np.linspace(1, 0, fo))
    samples *= fade[:, None]
    peak = float(np.max(np.abs(samples))) or 1.0
    return np.tanh(1.2 * samples / peak) * 0.7


def write_bed(mood: str, duration: float, out: Path) -> Path:
    """The bed as a 16-bit 48 kHz stereo WAV."""
    pcm = (synthesise(mood, duration) * 32767).astype("<i2")
    with wave.open(str(out), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return out
