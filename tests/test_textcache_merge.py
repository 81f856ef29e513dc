"""The codes' texts kept between links (``altlink/textcache.py``) where links ran at once: each
wrote a delta of its own, and more than ``MAX_DELTAS`` are left. The next link merges them into
the base though it makes no code itself (else every later link, making none, reads them all
again: the synthetic firmware's 3.4 MB of texts read some thirty times over, about 0.4 s, where
a benchmark's forked writers had each written theirs), and the texts read back are the same.
"""
from __future__ import annotations

from test_textcache import kept_files, tables

from altlink import manifest as manifestmod
from altlink import textcache


def _word(k: int) -> bytes:
    return (0xD2800000 | (k & 0xFFFF) << 5).to_bytes(4, "little")  # mov x0, #k


def test_deltas_left_by_links_at_once_are_merged(tmp_path):
    cache = str(tmp_path / "cache")
    n = textcache.MAX_DELTAS + 3
    # links that ran at once: each read the same (no) files, made its own code, wrote a delta
    at_once = [textcache.load(cache) for _ in range(n)]
    for k, texts in enumerate(at_once):
        texts.prepare([_word(k)])
        textcache.save(texts)
    assert len(kept_files(tmp_path / "cache")) == n
    want = tables(textcache.load(cache))
    assert all(_word(k) in want[0] for k in range(n))
    # a link that makes no code: the deltas merged into one base
    texts = textcache.load(cache)
    texts.prepare([_word(0)])  # (known: nothing new)
    textcache.save(texts)
    assert kept_files(tmp_path / "cache") == [textcache.key_of(cache) + textcache.BASE]
    assert tables(textcache.load(cache)) == want
    # and a link that makes no code and reads fewer than MAX_DELTAS writes nothing
    before = kept_files(tmp_path / "cache")
    textcache.save(textcache.load(cache))
    assert kept_files(tmp_path / "cache") == before


def test_a_link_without_new_codes_over_the_bound(tmp_path, monkeypatch):
    """Deltas over the bound, merged into a base within it: kept; where even the merge is over
    the bound, nothing is written (the files are left to the next link that makes codes)."""
    cache = str(tmp_path / "cache")
    n = textcache.MAX_DELTAS
    same = [textcache.load(cache) for _ in range(n)]
    for texts in same:  # (the same code each: the merge is one delta's size)
        texts.prepare([_word(1)])
        textcache.save(texts)
    one = (tmp_path / "cache" / textcache.FOLDER / kept_files(tmp_path / "cache")[0])
    monkeypatch.setattr(textcache, "MAX_BYTES", one.stat().st_size * 2)
    textcache.save(textcache.load(cache))
    assert kept_files(tmp_path / "cache") == [textcache.key_of(cache) + textcache.BASE]
    assert _word(1) in textcache.load(cache).code_json
    monkeypatch.setattr(textcache, "MAX_BYTES", 1)
    before = kept_files(tmp_path / "cache")
    textcache.save(textcache.load(cache))
    assert kept_files(tmp_path / "cache") == before
    assert isinstance(textcache.load(cache), manifestmod.CodeTexts)
