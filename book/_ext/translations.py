"""The translated editions: message catalogues, their checks, and a small editing tool.

The English pages are the source. `make translations` extracts every translatable message of
every page (Sphinx's gettext builder: paragraphs, headings, list items, table cells, captions,
admonition titles) into `_build/gettext/*.pot` and merges them into one catalogue per page and
language, `book/locales/<lang>/LC_MESSAGES/book/<page>.po` (sphinx-intl). It also collects the
phrase templates that notebooks glue into sentences (`aelib.i18n.say`) into `phrases.po`.
Code cells are never translated: there is one copy of the code, and every edition shows the
outputs of the same execution (see editions.py).

A catalogue is complete when every message has a translation, none is fuzzy and none is
obsolete; a translation is faithful to its source when it keeps the source's roles and their
targets (`{ref}`, `{doc}`, `{cite}`, `{glue:text}`), math, inline code, link targets and, for
phrases, the `{placeholders}`. tests/test_translations.py asserts both for every catalogue.

Command line (from the repository root):
    python book/_ext/translations.py update            make translations: extract, merge, status
    python book/_ext/translations.py status            what needs translating, per catalogue
    python book/_ext/translations.py show PO [--todo]  numbered entries (only unfinished ones)
    python book/_ext/translations.py fill PO FILE      set translations from FILE, written as
                                                       "@@ N" lines, each followed by the raw
                                                       text of entry N's translation
    python book/_ext/translations.py check PO...       the test's checks, entry by entry
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCALES = ROOT / "book" / "locales"
LANGUAGES = ("zh_CN", "ru")
LANGUAGE_NAMES = {"en": "English", "zh_CN": "中文", "ru": "Русский"}

# `{role}`content``; content may hold "text <target>" for cross-reference roles.
ROLE = re.compile(r"\{([a-zA-Z][\w:.-]*)\}`([^`]*)`")
XREF_ROLES = {"ref", "doc", "numref", "term", "download", "eq"}
MATH = re.compile(r"\$\$.+?\$\$|\$[^$\s](?:[^$]*?[^$\s])?\$", re.S)
CODE = re.compile(r"``([^`]+)``|`([^`]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)|<(https?://[^>\s]+)>")
# A message is re-parsed as Markdown on its own: one that starts like a list item, a heading or
# a quote turns into that block ("3. Title" becomes a list and the title stays English).
# aelib.i18n.PLACEHOLDER, not imported: `import aelib` loads torch, seconds at every start
PLACEHOLDER = re.compile(r"\{(\w+)\}")
BLOCK_START = re.compile(r"^(?:\d+[.)]\s|[-*+]\s|#{1,6}\s|>\s)")


def tokens(text: str, phrase: bool = False) -> Counter:
    """What a translation must keep of `text`: roles with their targets, math, inline code,
    link targets; for a phrase template also its `{placeholders}`."""
    found: Counter = Counter()
    rest = text
    for role, content in ROLE.findall(rest):
        if role in XREF_ROLES:
            m = re.search(r"<([^<>]+)>\s*$", content)
            content = m.group(1) if m else content
        found[f"{{{role}}}`{content}`"] += 1
    rest = ROLE.sub(" ", rest)
    for m in MATH.findall(rest):
        found["math " + m] += 1
    rest = MATH.sub(" ", rest)
    for a, b in CODE.findall(rest):
        found["code " + (a or b)] += 1
    rest = CODE.sub(" ", rest)
    for a, b in LINK.findall(rest):
        found["link " + (a or b)] += 1
    if phrase:
        for name in PLACEHOLDER.findall(text):
            found["{" + name + "}"] += 1
    return found


def entry_problems(msgid: str, msgstr: str, phrase: bool = False) -> list[str]:
    """Why `msgstr` is not a faithful translation of `msgid` (empty when it is)."""
    if not msgstr.strip():
        return ["untranslated"]
    want, got = tokens(msgid, phrase), tokens(msgstr, phrase)
    problems = []
    if not phrase and BLOCK_START.match(msgstr):
        problems.append("starts like a Markdown list item, heading or quote, so it would be "
                        "read as one: escape it, e.g. 3\\. instead of 3.")
    if want != got:
        lost = sorted((want - got).elements())
        added = sorted((got - want).elements())
        if lost:
            problems.append("lost " + "; ".join(lost))
        if added:
            problems.append("added " + "; ".join(added))
    return problems


def catalogues(language: str | None = None) -> list[Path]:
    langs = [language] if language else list(LANGUAGES)
    return sorted(p for lang in langs for p in (LOCALES / lang / "LC_MESSAGES").rglob("*.po"))


def catalogue_problems(path: Path) -> list[str]:
    """Every reason the catalogue at `path` is not complete and faithful."""
    import polib

    po = polib.pofile(str(path))
    phrase = path.name == "phrases.po"
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    out = []
    for i, e in enumerate(po, 1):
        where = f"{rel} entry {i} ({e.msgid[:60]!r})"
        if e.obsolete:
            out.append(f"{where}: obsolete (its English source is gone; run make translations)")
            continue
        if "fuzzy" in e.flags:
            out.append(f"{where}: fuzzy (the English changed: check and update the translation)")
        for p in entry_problems(e.msgid, e.msgstr, phrase):
            out.append(f"{where}: {p}")
    return out


def needs_no_translation(msgid: str) -> bool:
    """A message with no Latin word outside its roles, math and code (a cross-reference, a
    number, a formula, a term already in Chinese or Russian) reads the same in every language."""
    rest = LINK.sub(" ", CODE.sub(" ", MATH.sub(" ", ROLE.sub(" ", msgid))))
    # numbers with SI units read the same everywhere ("61 s", "**6.3 min**", "1.2 GiB")
    rest = re.sub(r"\d[\d.,]*\s*(?:s|ms|min|h|GiB|MiB|KiB|GB|MB|kB|B|dB)\b", " ", rest)
    return not re.search(r"[A-Za-z]", rest)


def prefill(path: Path) -> int:
    """Copy messages that need no translation into their translation; returns how many."""
    import polib

    po = polib.pofile(str(path), wrapwidth=0)
    n = 0
    for e in _entries(po):
        if not e.msgstr and needs_no_translation(e.msgid):
            e.msgstr = e.msgid
            n += 1
    if n:
        po.save(str(path))
    return n


def update() -> int:
    """Extract the English messages and merge them into every catalogue (make translations)."""
    import shutil
    import subprocess

    pot = ROOT / "_build" / "gettext"
    shutil.rmtree(pot, ignore_errors=True)
    from editions import build

    if build("gettext", pot):
        sys.exit("translations: the gettext build failed (see above)")
    subprocess.run([sys.executable, "-m", "sphinx_intl", "update", "-p", str(pot),
                    "-d", str(LOCALES), "-w", "0"] + [a for lang in LANGUAGES
                                                       for a in ("-l", lang)],
                   check=True, stdout=subprocess.DEVNULL)
    merge_phrases()
    for path in catalogues():
        prefill(path)
    return status()


SAY_NAMES = {"say"}


LABELS = (("code_prompt_show",), ("code_prompt_hide",), ("figure", "caption"), ("image", "alt"))


def label_slots(cell: dict) -> list[tuple[dict, str]]:
    """Where a notebook cell's metadata holds text a reader sees, as (dict, key) pairs: the
    prompts of a folded cell, a figure's caption, an image's alt text (`mystnb` metadata).
    editions.py writes the translations into the same slots."""
    slots = []
    for path in LABELS:
        holder = cell.get("metadata", {}).get("mystnb", {})
        for key in path[:-1]:
            holder = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(holder, dict) and isinstance(holder.get(path[-1]), str):
            slots.append((holder, path[-1]))
    return slots


def cell_labels(cell: dict) -> list[str]:
    """The texts of `label_slots`, empty ones left out."""
    return [holder[key] for holder, key in label_slots(cell) if holder[key].strip()]


def phrase_sources() -> list[Path]:
    return sorted((ROOT / "book").glob("*.ipynb")) + sorted((ROOT / "aelib").glob("*.py"))


def phrase_templates() -> dict[str, list[str]]:
    """Every phrase a run can word, as {English template: [where it is written]}: the first
    argument of each `say(...)` call in the notebooks' code and in aelib, plus the texts of
    the cells' metadata (`cell_labels`: prompts, captions, alt texts). A `say` whose template
    is not a string literal is an error."""
    import ast
    import json

    found: dict[str, list[str]] = {}
    for path in phrase_sources():
        rel = path.relative_to(ROOT)
        if path.suffix == ".ipynb":
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
            sources = []
            for i, cell in enumerate(cells):
                for text in cell_labels(cell):
                    found.setdefault(text, []).append(f"{rel} cell {cell.get('id', i)}")
                if cell["cell_type"] == "code":
                    src = "".join(cell["source"])
                    src = "\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!")))
                    sources.append((f"{rel} cell {cell.get('id', i)}", src))
        else:
            sources = [(str(rel), path.read_text(encoding="utf-8"))]
        for where, src in sources:
            for node in ast.walk(ast.parse(src)):
                if not isinstance(node, ast.Call):
                    continue
                f = node.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
                if name not in SAY_NAMES or not node.args:
                    continue
                first = node.args[0]
                if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                    if where.startswith("aelib/i18n.py"):
                        continue
                    raise ValueError(f"{where}, line {node.lineno}: say() needs a string literal "
                                     "as its template, so that make translations can find it")
                found.setdefault(first.value, []).append(f"{where}, line {node.lineno}")
    return found


def merge_phrases() -> None:
    """Bring every language's phrases.po in line with phrase_templates(): new templates are
    added untranslated, translations of kept ones stay, vanished ones are dropped."""
    import polib

    templates = phrase_templates()
    for lang in LANGUAGES:
        path = LOCALES / lang / "LC_MESSAGES" / "phrases.po"
        old = {e.msgid: e for e in polib.pofile(str(path))} if path.exists() else {}
        po = polib.POFile(wrapwidth=0)
        po.metadata = {"Content-Type": "text/plain; charset=utf-8", "Language": lang,
                       "MIME-Version": "1.0", "Content-Transfer-Encoding": "8bit"}
        for msgid in sorted(templates):
            e = old.get(msgid)
            po.append(polib.POEntry(msgid=msgid, msgstr=e.msgstr if e else "",
                                    comment="; ".join(templates[msgid][:3]),
                                    flags=list(e.flags) if e else []))
        path.parent.mkdir(parents=True, exist_ok=True)
        po.save(str(path))


def _entries(po):
    return [e for e in po if not e.obsolete]


def show(path: str, todo: bool = False) -> None:
    import polib

    po = polib.pofile(path)
    phrase = path.endswith("phrases.po")
    for i, e in enumerate(_entries(po), 1):
        problems = entry_problems(e.msgid, e.msgstr, phrase) + (
            ["fuzzy"] if "fuzzy" in e.flags else [])
        if todo and not problems:
            continue
        print(f"@@ {i}" + (f"   [{'; '.join(problems)}]" if problems else ""))
        print(e.msgid)
        if e.msgstr:
            print("-- current translation:")
            print(e.msgstr)
        print()


def fill(path: str, source: str) -> None:
    import polib

    po = polib.pofile(path, wrapwidth=0)
    entries = _entries(po)
    text = Path(source).read_text(encoding="utf-8")
    parts = re.split(r"^@@ (\d+)[^\n]*\n", text, flags=re.M)
    if parts[0].strip():
        sys.exit(f"fill: {source} must start with an '@@ N' line")
    done = 0
    for num, body in zip(parts[1::2], parts[2::2]):
        n = int(num)
        if not 1 <= n <= len(entries):
            sys.exit(f"fill: entry {n} does not exist ({len(entries)} entries in {path})")
        e = entries[n - 1]
        # the translation starts and ends with a line break exactly where the message does
        body = body.strip("\n")
        e.msgstr = ("\n" if e.msgid.startswith("\n") else "") + body + (
            "\n" if e.msgid.endswith("\n") else "")
        if "fuzzy" in e.flags:
            e.flags.remove("fuzzy")
        done += 1
    po.save(path)
    left = sum(1 for e in entries if not e.msgstr.strip())
    print(f"fill: {done} entries set in {path}; {left} still untranslated")


def status() -> int:
    import polib

    bad = 0
    for path in catalogues():
        po = polib.pofile(str(path))
        entries = _entries(po)
        todo = [e for e in entries if not e.msgstr.strip()]
        fuzzy = [e for e in entries if "fuzzy" in e.flags]
        obsolete = po.obsolete_entries()
        problems = catalogue_problems(path)
        flag = "" if not problems else f"   <- {len(problems)} problems"
        bad += bool(problems)
        print(f"{path.relative_to(ROOT)}: {len(entries)} messages, "
              f"{len(entries) - len(todo)} translated, {len(fuzzy)} fuzzy, "
              f"{len(todo)} untranslated, {len(obsolete)} obsolete{flag}")
    return bad


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    cmd, args = argv[0], argv[1:]
    if cmd == "update":
        update()  # lists what needs translating; tests/test_translations.py enforces it
        return 0
    if cmd == "status":
        return 1 if status() else 0
    if cmd == "show":
        show(args[0], todo="--todo" in args)
        return 0
    if cmd == "fill":
        fill(args[0], args[1])
        return 0
    if cmd == "check":
        problems = [p for a in args for p in catalogue_problems(Path(a).resolve())]
        print("\n".join(problems) or "check: every entry translated and faithful")
        return 1 if problems else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
