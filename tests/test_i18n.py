"""The bot's languages: the gettext catalogues are complete and current, every text can be shown in every
language, and each reply's language is chosen as documented (tables)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

import knowledge.errors
from bot import texts
from bot.i18n import CATALOGUE_DIRS, LOCALES, Locale, Plural, choose, locale_of_tag, locale_of_text, texts_for
from bot.settings import BotSettings
from knowledge import KnowledgeError, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]
LOCALE_DIR = ROOT / "bot" / "locale"
# what `make messages` extracts: `-k NP_:1c,2 -k NN_:1,2` and Babel's N_
KEYWORDS = {"N_": None, "NP_": ((1, "c"), 2), "NN_": (1, 2)}
FIELD = re.compile(r"\{([^{}]*)\}")
Key = tuple[str | None, str]  # (context, msgid)


def _key(message: Any) -> Key:
    return (message.context, message.id[0] if message.pluralizable else message.id)  # a plural by its singular


def _forms(string: Any) -> Any:
    """A translation as one value: a plural's forms as a tuple (read_mo gives a list, read_po a tuple)."""
    return tuple(string) if isinstance(string, list | tuple) else string


def _catalogue(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as file:
        return read_po(file, locale=locale)


def extracted() -> dict[Key, str]:
    """What the code marks for the catalogue now, as `make messages` extracts it."""
    found: dict[Key, str] = {}
    for filename, _, message, _, context in extract_from_dir(str(ROOT / "bot"), keywords=KEYWORDS):
        if message:
            found[(context, message if isinstance(message, str) else message[0])] = filename
    return found


def catalogues() -> dict[Locale, Catalog]:
    return {
        locale: _catalogue(LOCALE_DIR / folder / "LC_MESSAGES" / "messages.po", folder)
        for locale, folder in CATALOGUE_DIRS.items()
    }


def test_the_template_holds_every_marked_text_and_nothing_else() -> None:
    template = {_key(m) for m in _catalogue(LOCALE_DIR / "messages.pot") if m.id}
    marked = extracted()
    assert len(marked) >= 60
    assert set(marked) == template, "run `make messages`: the template is not what the code marks"


@pytest.mark.parametrize("locale", LOCALES)
def test_every_text_is_translated_in_every_language(locale: Locale) -> None:
    """A test fails when a language lacks a text of the catalogue, or its translation lost or gained a
    placeholder (`{question}`, `{seconds:.1f}`)."""
    template = {_key(m) for m in _catalogue(LOCALE_DIR / "messages.pot") if m.id}
    catalogue = catalogues()[locale]
    messages = {_key(m): m for m in catalogue if m.id}
    assert set(messages) == template, f"the {locale} catalogue is not merged with the template: `make messages`"
    for key, message in messages.items():
        assert message.string, f"{key} has no {locale} translation"
        assert "fuzzy" not in message.flags, f"{key} is fuzzy in {locale}"
        if message.pluralizable:  # each form uses the fields of the English forms ("in the last day": no {days})
            english = set(FIELD.findall(" ".join(message.id)))
            assert all(form for form in message.string), (key, locale)
            assert all(set(FIELD.findall(form)) <= english for form in message.string), (key, message.string)
            assert set(FIELD.findall(" ".join(message.string))) == english or locale == "en", (key, message.string)
            continue
        assert sorted(FIELD.findall(message.string)) == sorted(FIELD.findall(message.id)), (key, message.string)
        if locale != "en":
            assert message.string != message.id or not re.search("[A-Za-z]{3}", message.id), (key, locale)


@pytest.mark.parametrize("locale", LOCALES)
def test_the_compiled_catalogues_are_current(locale: Locale) -> None:
    """The .mo files the package ships are the .po files compiled (`make messages` compiles them)."""
    folder = LOCALE_DIR / CATALOGUE_DIRS[locale] / "LC_MESSAGES"
    with (folder / "messages.mo").open("rb") as file:
        compiled = {_key(m): _forms(m.string) for m in read_mo(file) if m.id}
    source = {_key(m): _forms(m.string) for m in _catalogue(folder / "messages.po", CATALOGUE_DIRS[locale]) if m.id}
    assert compiled == source, "run `make messages`: a compiled catalogue is stale"


@pytest.mark.parametrize("locale", LOCALES)
def test_every_text_can_be_shown_in_every_language(locale: Locale) -> None:
    """Each text of the catalogue, through the `Texts` the bot uses, formats in each language with the
    values its English takes, and is no longer English (but for symbols such as `{count}`)."""
    t = texts_for(locale)
    template = [m for m in _catalogue(LOCALE_DIR / "messages.pot") if m.id]
    for message in template:
        if message.pluralizable:  # in the form for 7 ("7 entries")
            fields = {field.split(":")[0].split("!")[0] for field in FIELD.findall(" ".join(message.id))}
            values = {field: 7 for field in fields}
            translated = t.count(Plural(*message.id), 7, **values)
            assert translated and "{" not in translated, (message.id, translated)
            assert translated == message.id[1].format(**values) if locale == "en" else translated != message.id[1]
            continue
        fields = {field.split(":")[0].split("!")[0] for field in FIELD.findall(message.id)}
        values: dict[str, object] = {field: 7 for field in fields}
        english = message.id.format(**values)
        if message.context:
            translated = t.pgettext(message.context, message.id)
            assert translated == t.lookup(message.id, message.context)
        else:
            translated = t(message.id, **values) if values else t(message.id)
        assert translated and "{" not in translated, (message.id, translated)
        if locale == "en":
            assert translated == english, message.id
        elif re.search("[A-Za-z]{3}", english):  # a sentence, not a symbol: it must have changed
            assert translated != english, (message.id, locale)
    assert len(template) >= 60


@pytest.mark.parametrize(
    ("locale", "n", "expected"),
    [
        ("en", 1, "1 entry; last indexed never; embedder e5."),  # was "1 entries"
        ("en", 2, "2 entries; last indexed never; embedder e5."),
        ("zh-Hans", 1, "共 1 个条目；上次索引时间：尚无；嵌入模型 e5。"),
    ],
)
def test_counted_texts_take_the_form_of_their_number(locale: Locale, n: int, expected: str) -> None:
    t = texts_for(locale)
    assert t.count(texts.STATS, n, entries=n, when=t(texts.STATS_NEVER), embedder="e5", running="") == expected
    none = t.count(texts.NEW_NONE, 1, days=1)
    assert none in ("No entries were added to the collection in the last day.", "最近 1 天合集没有新增条目。")


def test_the_knowledge_core_s_user_messages_are_in_the_catalogue() -> None:
    errors = [
        cls for cls in vars(knowledge.errors).values() if isinstance(cls, type) and issubclass(cls, KnowledgeError)
    ]
    assert len(errors) >= 7
    for error in errors:
        assert error.default_user_message in texts.KNOWLEDGE_MESSAGES, error.__name__
        assert texts_for("zh-Hans").lookup(error.default_user_message), error.__name__


@pytest.mark.parametrize(
    ("tag", "locale"),
    [
        ("zh-CN", "zh-Hans"),
        ("zh-SG", "zh-Hans"),
        ("zh", "zh-Hans"),
        ("zh_Hans", "zh-Hans"),
        ("zh-TW", "zh-Hant"),
        ("zh-HK", "zh-Hant"),
        ("zh-Hant-TW", "zh-Hant"),
        ("en-US", "en"),
        ("en-GB", "en"),
        ("EN", "en"),
        ("fr", None),
        ("ja", None),
        ("", None),
        (None, None),
    ],
)
def test_locale_of_tag(tag: str | None, locale: Locale | None) -> None:
    assert locale_of_tag(tag) == locale


@pytest.mark.parametrize(
    ("text", "locale"),
    [
        ("哪篇论文修正了 Adam 的 weight decay?", "zh-Hans"),
        ("非自回歸機器翻譯的論文", "zh-Hant"),
        # one character only Traditional writes is enough in a question (they were answered in Simplified)
        ("擴散模型", "zh-Hant"),
        ("哪篇論文", "zh-Hant"),
        ("LoRA 微調", "zh-Hant"),
        ("扩散模型", "zh-Hans"),
        ("后训练", "zh-Hans"),
        ("有哪些关于系統的文章", "zh-Hans"),  # one of each: Simplified, as before
        ("Which paper fixes weight decay in Adam?", "en"),
        ("对比学习 contrastive learning papers", "zh-Hans"),
        ("https://arxiv.org/abs/1711.05101", None),
        ("1711.05101", None),
        ("?!", None),
        ("", None),
    ],
)
def test_locale_of_text(text: str, locale: Locale | None) -> None:
    assert locale_of_text(text) == locale


@pytest.mark.parametrize(
    ("setting", "tags", "text", "last", "expected"),
    [
        ("auto", ("zh-CN", "en-US"), "Which paper?", None, "zh-Hans"),  # the user's Discord language first
        ("auto", ("fr", "zh-TW"), "Which paper?", None, "zh-Hant"),  # then the server's
        ("auto", ("fr", None), "哪篇论文", None, "zh-Hans"),  # then the question's
        ("auto", (), "Which paper?", "zh-Hans", "en"),
        ("auto", (), "", "zh-Hant", "zh-Hant"),  # then the conversation's last
        ("auto", (), "1711.05101", None, "en"),  # then English
        ("zh-Hant", ("en-US",), "Which paper?", "en", "zh-Hant"),  # KB_LOCALE overrides everything
        ("en", ("zh-CN",), "哪篇论文", None, "en"),
    ],
)
def test_choose(setting: Any, tags: tuple[str | None, ...], text: str, last: Locale | None, expected: Locale) -> None:
    assert choose(setting, tags=tags, text=text, last=last) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("auto", "auto"), ("", "auto"), ("zh-Hans", "zh-Hans"), ("zh_CN", "zh-Hans"), ("zh-TW", "zh-Hant"), ("EN", "en")],
)
def test_kb_locale_accepts_the_usual_spellings(monkeypatch: pytest.MonkeyPatch, value: str, expected: str) -> None:
    monkeypatch.setenv("KB_LOCALE", value)
    assert load_settings(BotSettings, _env_file=None).locale == expected


def test_a_bad_kb_locale_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_LOCALE", "fr")
    with pytest.raises(SettingsError) as raised:
        load_settings(BotSettings, _env_file=None)
    assert str(raised.value) == "invalid setting KB_LOCALE: expected auto, zh-Hans, zh-Hant or en (got 'fr')"


def test_python_m_bot_with_a_bad_kb_locale_exits_2_with_one_line(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("KB_")}
    env |= {"KB_LOCALE": "klingon", "KB_CONFIG_DIR": str(tmp_path), "KB_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "console"],
        input="",
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line == "error: invalid setting KB_LOCALE: expected auto, zh-Hans, zh-Hant or en (got 'klingon')"
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("locale", ["en", "zh-Hans", "zh-Hant"])
def test_the_help_introduction_is_one_paragraph(locale: Locale) -> None:
    """A line break in a text is the front-end's to make: the introduction broke in mid-sentence everywhere."""
    intro = texts_for(locale)(texts.HELP_INTRO)
    assert "\n" not in intro and intro.endswith(("English.", "中英文皆可。"))
