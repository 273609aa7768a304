"""docs/api.md says what the services' OpenAPI documents say."""
from toko.apidocs import PATH, documents, render


def test_docs_api_md_is_current():
    assert PATH.read_text() == render(documents()), "docs/api.md is out of date: run `make docs`"
