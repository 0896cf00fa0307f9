"""The names data set: finding it, verifying it, and the lecture notebook's exact split.

The file is looked for in a fixed order (an explicit path, the MAKEMORE_DATA variable, the
repository's data/ folder, a sibling ../shared/data checkout, then a verified download) so that
results never silently come from a different file: its sha256 travels with every result.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import random
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

NAMES_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
NAMES_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATH = REPO_ROOT / "data" / "names.txt"
SHARED_PATH = REPO_ROOT.parent / "shared" / "data" / "names.txt"
ENV_VAR = "MAKEMORE_DATA"

VOCAB = "." + "abcdefghijklmnopqrstuvwxyz"
STOI = {ch: i for i, ch in enumerate(VOCAB)}
SPLIT_SEED = 42  # the notebook's random.seed(42) before random.shuffle(words)


class DataError(Exception):
    """A data file that is missing, altered or malformed; the message says how to fix it."""


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def locate(path: str | os.PathLike[str] | None = None, download: bool = True) -> Path:
    """Return the names file, in order: `path`, $MAKEMORE_DATA, data/names.txt,
    ../shared/data/names.txt, else a download cached as data/names.txt."""
    explicit = path if path is not None else os.environ.get(ENV_VAR) or None
    if explicit is not None:
        found = Path(explicit)
        if not found.is_file():
            origin = "--data" if path is not None else f"${ENV_VAR}"
            raise DataError(f"data file {found} (from {origin}) does not exist")
        return found
    for candidate in (DEFAULT_PATH, SHARED_PATH):
        if candidate.is_file():
            return candidate
    if download:
        try:
            return _download(DEFAULT_PATH)
        except (OSError, http.client.HTTPException) as err:
            reason = f"download from {NAMES_URL} failed ({err})"
    else:
        reason = "downloading was not allowed"
    raise DataError(
        f"names.txt not found and {reason}. Provide it one of three ways: "
        f"pass --data PATH, set {ENV_VAR}=PATH, or copy it to {DEFAULT_PATH}"
    )


def _download(target: Path) -> Path:
    with urllib.request.urlopen(NAMES_URL, timeout=30) as response:
        payload = response.read()
    digest = hashlib.sha256(payload).hexdigest()
    if digest != NAMES_SHA256:
        raise DataError(f"downloaded file has sha256 {digest}, expected {NAMES_SHA256}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".tmp")
    partial.write_bytes(payload)
    partial.replace(target)
    return target


def parse_words(text: str, origin: str) -> list[str]:
    """Split into names, refusing anything that is not a non-empty run of a-z."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    words = []
    for number, line in enumerate(lines, start=1):
        word = line[:-1] if line.endswith("\r") else line
        if not word:
            raise DataError(f"{origin}: line {number} is empty")
        for ch in word:
            if ch not in STOI or ch == ".":
                raise DataError(
                    f"{origin}: line {number} has the character {ch!r}; only lowercase a-z allowed"
                )
        words.append(word)
    if not words:
        raise DataError(f"{origin}: the file holds no names")
    return words


@dataclass(frozen=True)
class Words:
    words: tuple[str, ...]
    sha256: str
    path: Path

    @property
    def is_lecture_data(self) -> bool:
        return self.sha256 == NAMES_SHA256


def load_words(path: str | os.PathLike[str] | None = None, allow_other: bool = False) -> Words:
    found = locate(path)
    digest = sha256_of(found)
    if digest != NAMES_SHA256 and not allow_other:
        raise DataError(
            f"{found} has sha256 {digest}, not the lecture's {NAMES_SHA256}: it is not the "
            "lecture's names.txt. Restore the original, or pass --allow-other-data to run on it "
            "(results then carry its sha256)"
        )
    raw = found.read_bytes()
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(
            f"{found}: line {line} has the byte {raw[err.start]:#04x}, which is not UTF-8 text; "
            "only lowercase a-z allowed"
        ) from None
    return Words(tuple(parse_words(text, str(found))), digest, found)


def build_dataset(
    words: list[str] | tuple[str, ...], block_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One example per character of each word + '.', the context sliding over [0]*block_size."""
    xs: list[list[int]] = []
    ys: list[int] = []
    for word in words:
        context = [0] * block_size
        for ch in word + ".":
            index = STOI[ch]
            xs.append(context)
            ys.append(index)
            context = context[1:] + [index]
    x = torch.tensor(xs, dtype=torch.long).view(len(xs), block_size)
    return x, torch.tensor(ys, dtype=torch.long)


@dataclass(frozen=True)
class Splits:
    """Train/dev/test examples as (X, Y) pairs: X is (N, block_size) int64, Y is (N,)."""

    train: tuple[torch.Tensor, torch.Tensor]
    dev: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    block_size: int
    sha256: str
    words: tuple[str, ...]

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        aliases = {"train": self.train, "dev": self.dev, "val": self.dev, "test": self.test}
        if name not in aliases:
            raise ValueError(f"unknown split {name!r}; choose train, val (dev) or test")
        return aliases[name]


def split_words(words: tuple[str, ...]) -> tuple[list[str], list[str], list[str]]:
    """The notebook's 80/10/10 split after random.seed(42); random.shuffle."""
    shuffled = list(words)
    random.Random(SPLIT_SEED).shuffle(shuffled)
    n1, n2 = int(0.8 * len(shuffled)), int(0.9 * len(shuffled))
    return shuffled[:n1], shuffled[n1:n2], shuffled[n2:]


@lru_cache(maxsize=8)
def _cached_splits(path: Path, digest: str, block_size: int, allow_other: bool) -> Splits:
    words = load_words(path, allow_other)
    train, dev, test = split_words(words.words)
    if not (train and dev and test):
        raise DataError(
            f"{path} holds {len(words.words)} names: the notebook's 80/10/10 split leaves a "
            f"split empty (train {len(train)}, val {len(dev)}, test {len(test)}); give a file "
            "of at least 10 names"
        )
    return Splits(
        build_dataset(train, block_size),
        build_dataset(dev, block_size),
        build_dataset(test, block_size),
        block_size,
        words.sha256,
        words.words,
    )


def load_splits(
    block_size: int = 3,
    path: str | os.PathLike[str] | None = None,
    allow_other: bool = False,
) -> Splits:
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    found = locate(path).resolve()
    return _cached_splits(found, sha256_of(found), block_size, allow_other)
