"""The storefront's words for errors (web/js/api.js) against every code the API can answer."""
import re
from pathlib import Path

from common.error_codes import CODES

API_JS = Path(__file__).resolve().parents[1] / "web/js/api.js"
# Codes the page makes itself, not the API.
PAGE_CODES = {"network"}


def _explain() -> str:
    text = API_JS.read_text()
    start = text.index("export function explain(")
    return text[start:text.index("\n}\n", start)]


def test_every_code_the_api_answers_has_words_and_none_is_stale():
    body = _explain()
    by_code = set(re.findall(r"case '([a-z_]+)':", body))
    by_status = {int(status) for status in re.findall(r"case (\d{3}):", body)}
    assert not by_code - set(CODES) - PAGE_CODES, "words for codes the API no longer answers"
    wordless = sorted(code for code, meaning in CODES.items()
                      if code not in by_code and meaning.status not in by_status and meaning.status < 500)
    assert not wordless, f"no words for {wordless}: add a case to explain() in web/js/api.js"
