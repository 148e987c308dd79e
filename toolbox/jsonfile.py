"""The one reader of JSON: every JSON the toolbox reads (a store's index and records, a
precompute done-record, the converted-model cache record, a ``.keras`` config) is parsed here
(the files themselves are read through ``toolbox.files``, which uses this module).

A JSON file is data that anyone may have written: ``parse_json`` turns every way it can be
wrong (not UTF-8, not JSON, brackets nested thousands deep, which Python's parser meets with a
RecursionError) into one exception, ``BadJSON``, a ``ValueError``, so a reader that moves a
damaged file aside or refuses it in one line needs one ``except``. What the parsed value must
look like is the reader's to check (``expect`` names the usual case: an object).
"""

from __future__ import annotations

import json
from typing import Any

MAX_JSON_BYTES = 64 << 20  # the largest JSON deepvis writes (a big crop index) is a few MB


class BadJSON(ValueError):
    """Text that is not the JSON its reader wants; the message says why in a few words."""


def parse_json(data: bytes | str) -> Any:
    """The value ``data`` holds; ``BadJSON`` for anything that is not JSON."""
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        return json.loads(text)
    except UnicodeDecodeError as e:
        raise BadJSON(f"not UTF-8 text (byte {e.start})") from None
    except RecursionError:  # brackets nested thousands deep
        raise BadJSON("nested too deeply") from None
    except ValueError as e:
        raise BadJSON(f"not valid JSON ({str(e).splitlines()[0][:80]})") from None


def expect_object(value: Any) -> dict:
    """``value`` when it is a JSON object; ``BadJSON`` otherwise."""
    if not isinstance(value, dict):
        raise BadJSON(f"a JSON {type(value).__name__} where an object was expected")
    return value


__all__ = ["BadJSON", "MAX_JSON_BYTES", "expect_object", "parse_json"]
