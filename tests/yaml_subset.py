"""A reader for the subset of YAML that the CI examples (examples/ci/*.yml) are written in.

PyYAML is not a dependency of the harness, and the test that runs the examples (tests/test_ci_examples.py)
must not need it. The examples keep to this subset, which this module reads exactly as YAML does:

- block mappings (``key: value``, ``key:`` followed by a more indented block, or by a sequence at the
  same indent), block sequences (``- item``, ``- key: value`` starting a mapping, ``- |``);
- literal block scalars ``|`` and ``|-`` (the shell steps);
- plain scalars, 'single' and "double" quoted scalars, one-line flow sequences ``[a, b]``;
- comments (`` #`` outside quotes) and blank lines.

Scalars stay strings (``false`` is ``"false"``): the test only reads text. Anything else (anchors, tags,
``>``, flow mappings, multi-line flow collections) raises ValueError naming the line, so an example that
leaves the subset fails its test instead of being misread. When PyYAML happens to be installed, the test
also checks this reader against it.
"""

from __future__ import annotations

from typing import Any


class _Reader:
    def __init__(self, text: str) -> None:
        self.lines = text.replace("\t", "    ").splitlines()
        self.i = 0

    # -- lines ---------------------------------------------------------------------------------

    def _error(self, message: str) -> ValueError:
        return ValueError(f"line {self.i + 1}: {message}: {self.lines[self.i] if self.i < len(self.lines) else ''!r}")

    def _peek(self) -> tuple[int, str] | None:
        """(indent, content without its comment) of the next line with content, or None at the end."""
        while self.i < len(self.lines):
            raw = self.lines[self.i]
            content = _strip_comment(raw).strip()
            if content:
                return len(raw) - len(raw.lstrip(" ")), content
            self.i += 1
        return None

    # -- structure -----------------------------------------------------------------------------

    def document(self) -> Any:
        first = self._peek()
        if first is None:
            return None
        value = self._block(first[0])
        if self._peek() is not None:
            raise self._error("unexpected indentation")
        return value

    def _block(self, indent: int) -> Any:
        peek = self._peek()
        assert peek is not None
        if _is_item(peek[1]):
            return self._sequence(indent)
        return self._mapping(indent)

    def _mapping(self, indent: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while (peek := self._peek()) is not None and peek[0] == indent and not _is_item(peek[1]):
            key, rest = _split_key(peek[1])
            if key is None:
                raise self._error("expected `key: value`")
            if key in result:
                raise self._error(f"duplicate key {key!r}")
            self.i += 1
            result[key] = self._value(rest, indent, allow_sequence_at_indent=True)
        if peek is not None and peek[0] > indent:
            raise self._error("unexpected indentation")
        return result

    def _value(self, rest: str, indent: int, *, allow_sequence_at_indent: bool) -> Any:
        if rest in ("|", "|-"):
            return self._literal(indent, strip=rest == "|-")
        if rest:
            return _scalar(rest, self._error)
        peek = self._peek()
        if peek is None:
            return None
        if peek[0] > indent:
            return self._block(peek[0])
        if allow_sequence_at_indent and peek[0] == indent and _is_item(peek[1]):
            return self._sequence(indent)
        return None

    def _sequence(self, indent: int) -> list[Any]:
        items: list[Any] = []
        while (peek := self._peek()) is not None and peek[0] == indent and _is_item(peek[1]):
            raw = self.lines[self.i]
            after = raw[indent + 1 :]
            content = _strip_comment(after).strip()
            offset = indent + 1 + (len(after) - len(after.lstrip(" ")))
            if not content:
                self.i += 1
                items.append(self._value("", indent, allow_sequence_at_indent=False))
            elif content in ("|", "|-"):
                self.i += 1
                items.append(self._literal(indent, strip=content == "|-"))
            elif _split_key(content)[0] is not None:
                # "- key: value": a mapping whose first key sits where the item's content starts.
                self.lines[self.i] = " " * offset + raw[offset:]
                items.append(self._mapping(offset))
            else:
                self.i += 1
                items.append(_scalar(content, self._error))
        return items

    def _literal(self, indent: int, *, strip: bool) -> str:
        body: list[str] = []
        block_indent: int | None = None
        while self.i < len(self.lines):
            raw = self.lines[self.i]
            if raw.strip():
                here = len(raw) - len(raw.lstrip(" "))
                if here <= indent:
                    break
                if block_indent is None:
                    block_indent = here
                if here < block_indent:
                    raise self._error("less indented line inside a block scalar")
                body.append(raw[block_indent:])
            else:
                body.append("")
            self.i += 1
        while body and not body[-1]:
            body.pop()
        text = "\n".join(body)
        return text if strip or not text else text + "\n"


def _is_item(content: str) -> bool:
    return content == "-" or content.startswith("- ")


def _strip_comment(line: str) -> str:
    quote: str | None = None
    for n, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"" and (n == 0 or line[n - 1] in " [,:-"):
            quote = ch
        elif ch == "#" and (n == 0 or line[n - 1] in " \t"):
            return line[:n]
    return line


def _split_key(content: str) -> tuple[str | None, str]:
    """("key", "rest") for `key: rest` / `key:`; (None, content) when the line is no mapping entry."""
    if content[:1] in "'\"":
        end = content.find(content[0], 1)
        if end > 0 and content[end + 1 : end + 2] == ":" and content[end + 2 : end + 3] in ("", " "):
            return content[1:end], content[end + 2 :].strip()
        return None, content
    if content[:1] in "[{":
        return None, content
    n = 0
    while (n := content.find(":", n)) >= 0:
        if content[n + 1 : n + 2] in ("", " "):
            return content[:n].strip(), content[n + 1 :].strip()
        n += 1
    return None, content


def _scalar(text: str, error: Any) -> Any:
    text = text.strip()
    if text[:1] in "&*!>{%@`":
        raise error(f"outside the YAML subset of tests/yaml_subset.py ({text[:1]!r})")
    if text.startswith("'"):
        if not text.endswith("'") or len(text) < 2:
            raise error("unterminated single-quoted scalar")
        return text[1:-1].replace("''", "'")
    if text.startswith('"'):
        if not text.endswith('"') or len(text) < 2:
            raise error("unterminated double-quoted scalar")
        body = text[1:-1]
        if "\\" in body.replace('\\"', "").replace("\\\\", ""):
            raise error("escape sequences other than \\\" and \\\\ are outside the subset")
        return body.replace('\\"', '"').replace("\\\\", "\\")
    if text.startswith("["):
        if not text.endswith("]"):
            raise error("a flow sequence must be on one line")
        inner = text[1:-1].strip()
        return [_scalar(part, error) for part in _split_commas(inner)] if inner else []
    return text


def _split_commas(text: str) -> list[str]:
    parts, quote, start = [], None, 0
    for n, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == ",":
            parts.append(text[start:n])
            start = n + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def load(text: str) -> Any:
    """The document, as dicts, lists and strings."""
    return _Reader(text).document()


def normalised(value: Any) -> Any:
    """PyYAML's reading of the same document, with scalars as this reader gives them (for the cross-check)."""
    if isinstance(value, dict):
        return {("on" if key is True else str(key)): normalised(v) for key, v in value.items()}
    if isinstance(value, list):
        return [normalised(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return None
    return str(value)
