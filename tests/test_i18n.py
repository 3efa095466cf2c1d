"""aelib.i18n: phrases a run words, rendered in every language of the book."""

import json

import pytest
from IPython.core.formatters import format_display_data

from aelib import i18n, plot

ZH = {"{method} is {gap} dB behind": "{method}落后 {gap} dB", "the median filter": "中值滤波器"}


def test_a_phrase_is_its_english_string_and_carries_its_template():
    p = i18n.say("{method} is {gap} dB behind", method=i18n.say("the median filter"), gap="1.7")
    assert p == "the median filter is 1.7 dB behind" and isinstance(p, str)
    assert p.upper() == "THE MEDIAN FILTER IS 1.7 DB BEHIND"
    assert p.in_language("zh_CN", ZH) == "中值滤波器落后 1.7 dB"
    # what a notebook stores when the phrase is glued or displayed (myst_nb.glue does this)
    bundle, _ = format_display_data(p)
    assert bundle["text/plain"] == repr("the median filter is 1.7 dB behind")
    stored = json.loads(json.dumps(bundle[i18n.MIME]))
    assert i18n.render(stored, "zh_CN", ZH) == "中值滤波器落后 1.7 dB"


def test_lists_end_with_each_languages_conjunction():
    three = i18n.listed(["2", "4", "8"])
    assert three == "2, 4 and 8" == plot.listed(k for k in (2, 4, 8))
    assert three.in_language("zh_CN", {}) == "2、4和8"
    assert three.in_language("ru", {}) == "2, 4 и 8"
    assert i18n.listed(["a", "b"], "or").in_language("ru", {}) == "a или b"
    assert i18n.listed([i18n.say("the median filter")]).in_language("zh_CN", ZH) == "中值滤波器"


def test_markdown_phrases_display_as_markdown_with_their_template():
    note = plot.run_note(type("D", (), {"name": "digits", "x_train": [0] * 9, "x_val": [0],
                                        "x_test": [0] * 3})(), quick=True, seed=2)
    bundle, _ = format_display_data(note)
    assert bundle["text/markdown"].startswith("> **This page shows a run in quick mode on digits")
    assert "seed 2" in bundle["text/markdown"] and i18n.MIME in bundle


def test_bad_phrases_are_refused_with_what_to_do():
    with pytest.raises(ValueError, match="no argument for \\['gap'\\]"):
        i18n.say("{method} is {gap} dB behind", method="x")
    with pytest.raises(ValueError, match="no placeholder for \\['extra'\\]"):
        i18n.say("plain", extra="1")
    with pytest.raises(TypeError, match="format the number"):
        i18n.say("{gap} dB", gap=1.7)
    with pytest.raises(ValueError, match="no items"):
        i18n.listed([])
    with pytest.raises(KeyError, match="no ru translation of the phrase 'plain'"):
        i18n.say("plain").in_language("ru", {})
    with pytest.raises(ValueError, match="language 'de'"):
        i18n.say("plain").in_language("de", {})
