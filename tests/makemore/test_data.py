"""makemore.data: where names.txt is found, how it is verified and validated, the vocabulary, the
context builder and the notebook's split. The download path is tested offline by replacing
urllib's urlopen."""

from __future__ import annotations

import http.client
import io
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from makemore import data
from makemore.data import (
    NAMES_SHA256,
    NAMES_URL,
    STOI,
    VOCAB,
    DataError,
    build_dataset,
    load_splits,
    load_words,
    locate,
    parse_words,
    sha256_of,
    split_words,
)

LETTERS = "abcdefghijklmnopqrstuvwxyz"
THREE_WAYS = ("--data PATH", "MAKEMORE_DATA=PATH", "data/names.txt")


@pytest.fixture(scope="module")
def lecture_bytes() -> bytes:
    return locate().read_bytes()


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Point the repository and shared locations into tmp_path and clear $MAKEMORE_DATA, so that
    each test decides which places hold a file; a network call fails unless a test allows it."""
    default = tmp_path / "repo" / "data" / "names.txt"
    shared = tmp_path / "shared" / "data" / "names.txt"
    monkeypatch.setattr(data, "DEFAULT_PATH", default)
    monkeypatch.setattr(data, "SHARED_PATH", shared)
    monkeypatch.delenv(data.ENV_VAR, raising=False)

    def offline(url, timeout=None):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    return {"default": default, "shared": shared, "tmp": tmp_path}


def put(path: Path, text: str = "emma\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def serve(monkeypatch, payload: bytes | Exception) -> list[str]:
    """urlopen answers every request with `payload` (or raises it); returns the URLs asked for."""
    asked: list[str] = []

    def fake_urlopen(url, timeout=None):
        asked.append(url)
        if isinstance(payload, Exception):
            raise payload
        return io.BytesIO(payload)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return asked


# --- finding the file --------------------------------------------------------------------------


def test_search_order(places, monkeypatch, lecture_bytes):
    """--data PATH > $MAKEMORE_DATA > data/names.txt > ../shared/data/names.txt > download: each
    place is used only when every place before it is empty."""
    explicit = put(places["tmp"] / "explicit.txt")
    from_env = put(places["tmp"] / "env.txt")
    put(places["default"])
    put(places["shared"])
    monkeypatch.setenv(data.ENV_VAR, str(from_env))
    assert locate(explicit) == explicit
    assert locate() == from_env
    monkeypatch.setenv(data.ENV_VAR, "")  # an empty variable counts as unset
    assert locate() == places["default"]
    monkeypatch.delenv(data.ENV_VAR)
    assert locate() == places["default"]
    places["default"].unlink()
    assert locate() == places["shared"]
    places["shared"].unlink()
    asked = serve(monkeypatch, lecture_bytes)
    assert locate() == places["default"]
    assert asked == [NAMES_URL]


@pytest.mark.parametrize("origin", ["--data", "$MAKEMORE_DATA"])
def test_missing_explicit_file_is_an_error_naming_its_origin(places, monkeypatch, origin):
    """An explicitly named file that does not exist is an error, never a silent fallback."""
    put(places["default"])
    missing = places["tmp"] / "nowhere.txt"
    if origin == "--data":
        call = lambda: locate(missing)  # noqa: E731
    else:
        monkeypatch.setenv(data.ENV_VAR, str(missing))
        call = locate
    with pytest.raises(DataError, match="does not exist") as err:
        call()
    assert str(missing) in str(err.value) and origin in str(err.value)


def test_download_caches_a_good_payload_atomically(places, monkeypatch, lecture_bytes):
    """A payload with the lecture's sha256 is written to a temporary file and renamed into
    place: the cache never exists half-written, and no temporary file is left behind."""
    serve(monkeypatch, lecture_bytes)
    target = places["default"]
    writes: list[tuple[Path, bool]] = []
    write_bytes = Path.write_bytes

    def spy(self, payload):
        writes.append((self, target.exists()))
        return write_bytes(self, payload)

    monkeypatch.setattr(Path, "write_bytes", spy)
    assert locate() == target
    assert writes == [(target.with_suffix(".tmp"), False)]
    assert target.read_bytes() == lecture_bytes
    assert list(target.parent.iterdir()) == [target]
    assert load_words().is_lecture_data


def test_download_with_a_wrong_sha256_is_refused(places, monkeypatch):
    serve(monkeypatch, b"emma\nolivia\n")
    with pytest.raises(DataError, match="sha256") as err:
        locate()
    assert NAMES_SHA256 in str(err.value)
    assert not places["default"].parent.exists() or not any(places["default"].parent.iterdir())


@pytest.mark.parametrize(
    "failure",
    [
        urllib.error.URLError("Temporary failure in name resolution"),
        TimeoutError("timed out"),
        http.client.IncompleteRead(b"emma\n", 1000),
    ],
    ids=["offline", "timeout", "cut-off"],
)
def test_failed_download_names_the_three_ways(places, monkeypatch, failure):
    serve(monkeypatch, failure)
    with pytest.raises(DataError) as err:
        locate()
    message = str(err.value)
    assert NAMES_URL in message and "failed" in message
    assert all(way in message for way in THREE_WAYS), message
    assert not places["default"].exists()


def test_no_download_when_not_allowed(places, monkeypatch):
    asked = serve(monkeypatch, b"")
    with pytest.raises(DataError, match="not allowed") as err:
        locate(download=False)
    assert all(way in str(err.value) for way in THREE_WAYS)
    assert asked == []


# --- verification and validation ---------------------------------------------------------------


def test_the_lecture_file(lecture_bytes):
    """The file the suite runs on is the lecture's: its sha256, size and name count."""
    words = load_words()
    assert words.sha256 == NAMES_SHA256 == sha256_of(words.path)
    assert len(lecture_bytes) == 228_145
    assert len(words.words) == 32_033
    assert words.is_lecture_data


def test_another_file_is_refused_unless_allowed(tmp_path):
    other = put(tmp_path / "names.txt", "emma\r\nolivia\r\nava")  # CRLF, no final newline
    with pytest.raises(DataError, match="sha256") as err:
        load_words(other)
    assert str(other) in str(err.value) and "--allow-other-data" in str(err.value)
    words = load_words(other, allow_other=True)
    assert words.words == ("emma", "olivia", "ava")
    assert words.sha256 == sha256_of(other) and not words.is_lecture_data
    with pytest.raises(DataError, match="leaves a split empty"):  # 3 names: no val split
        load_splits(2, other, allow_other=True)
    ten = put(tmp_path / "ten.txt", "\n".join(["emma", "olivia", "ava", "mia", "zoe", "liam",
                                               "noah", "eli", "ian", "max"]))
    splits = load_splits(2, ten, allow_other=True)
    assert splits.sha256 == sha256_of(ten) and len(splits.words) == 10
    assert all(len(part[0]) for part in (splits.train, splits.dev, splits.test))


def test_undecodable_bytes_name_the_file_and_line(tmp_path):
    bad = tmp_path / "names.txt"
    bad.write_bytes(b"emma\nol\xffvia\n")
    with pytest.raises(DataError, match=r"line 2 has the byte 0xff") as err:
        load_words(bad, allow_other=True)
    assert str(bad) in str(err.value)


OFFENDERS = "AZ.-' \t0é"  # upper case, the '.' token, punctuation, blanks, digits, accents


@settings(max_examples=200)
@given(
    lines=st.lists(st.text(alphabet=LETTERS + OFFENDERS, max_size=6), min_size=1, max_size=8),
    crlf=st.booleans(),
    final_newline=st.booleans(),
)
def test_validation(lines, crlf, final_newline):
    """Accepted exactly when every line is a non-empty run of a-z, whatever the line endings and
    the final newline; otherwise the error names the file, the first bad line and its first bad
    character."""
    ending = "\r\n" if crlf else "\n"
    text = ending.join(lines) + ending * final_newline
    if not final_newline and lines[-1] == "":
        lines = lines[:-1]  # an empty last line without a newline is no line at all
    bad = [i for i, line in enumerate(lines) if not line or set(line) - set(LETTERS)]
    if not lines:
        with pytest.raises(DataError, match="holds no names"):
            parse_words(text, "some/names.txt")
    elif not bad:
        assert parse_words(text, "some/names.txt") == lines
    else:
        with pytest.raises(DataError) as err:
            parse_words(text, "some/names.txt")
        message, line = str(err.value), lines[bad[0]]
        assert message.startswith(f"some/names.txt: line {bad[0] + 1} ")
        if line:
            assert repr(next(ch for ch in line if ch not in LETTERS)) in message
        else:
            assert "empty" in message


@pytest.mark.parametrize("text", ["em\rma\n", "emma\r\r\n", "emma\n\r\n"])
def test_a_stray_carriage_return_is_refused(text):
    """Only one \\r directly before a newline is a line ending."""
    with pytest.raises(DataError, match=r"line [12] "):
        parse_words(text, "f")


@pytest.mark.parametrize("text", ["", "\n", "\r\n"])
def test_no_names_is_an_error(text):
    with pytest.raises(DataError, match="line 1 is empty|holds no names"):
        parse_words(text, "f")


# --- vocabulary, contexts and the split --------------------------------------------------------


def test_vocabulary():
    """27 tokens: '.' is 0 (start and end), then a..z are 1..26."""
    assert len(VOCAB) == 27 and VOCAB[0] == "."
    assert STOI == {ch: i for i, ch in enumerate("." + LETTERS)}
    assert [VOCAB[STOI[ch]] for ch in LETTERS] == list(LETTERS)


@given(
    words=st.lists(st.text(alphabet=LETTERS, min_size=1, max_size=7), min_size=1, max_size=6),
    block_size=st.integers(1, 8),
)
def test_contexts(words, block_size):
    """One example per character of each word and its end '.': the context is the previous
    block_size tokens, padded with '.' (0) before the word starts."""
    x, y = build_dataset(words, block_size)
    rows = []
    for word in words:
        tokens = [0] * block_size + [STOI[ch] for ch in word] + [0]
        rows += [(tokens[t : t + block_size], tokens[t + block_size]) for t in range(len(word) + 1)]
    assert x.dtype == y.dtype == torch.long
    assert x.shape == (len(rows), block_size) and y.shape == (len(rows),)
    assert x.tolist() == [r[0] for r in rows] and y.tolist() == [r[1] for r in rows]


def test_notebook_split(splits):
    """random.seed(42) shuffle, 80/10/10 by words: 182,625 / 22,655 / 22,866 examples."""
    sizes = [(x.shape, y.shape) for x, y in (splits.train, splits.dev, splits.test)]
    assert sizes == [((n, 3), (n,)) for n in (182_625, 22_655, 22_866)]
    assert splits.sha256 == NAMES_SHA256 and splits.split("val") is splits.dev
    train, dev, test = split_words(splits.words)
    assert (len(train), len(dev), len(test)) == (25_626, 3_203, 3_204)
    assert sorted(train + dev + test) == sorted(splits.words)
    assert load_splits(3) is splits  # cached: the same file and block size load once
    with pytest.raises(ValueError, match="unknown split"):
        splits.split("validation")


def test_block_size_must_be_positive():
    with pytest.raises(ValueError, match="block_size"):
        load_splits(0)
