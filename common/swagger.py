"""Swagger UI pages: every service's /docs/ and the gateway's /docs/ (no Flask here: the gateway renders too).

Every URL on the page is relative, so a page works wherever it is served from — on a service's port at
/docs/, behind the gateway at /_item/docs/ — as long as its address ends in /docs/. The assets come from
the flask-swagger-ui wheel (no CDN), and validatorUrl is off: the page never sends a spec's address to
validator.swagger.io. Each page is sent with swagger_csp(): no other site may frame it, and the one inline
script that may run is the page's own (by its hash).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from pathlib import Path


def dist_dir() -> Path:
    """The Swagger UI assets shipped in the flask-swagger-ui wheel."""
    import flask_swagger_ui

    return Path(flask_swagger_ui.__file__).resolve().parent / "dist"


def _init_script(config: dict) -> str:
    options = {
        "dom_id": "#swagger-ui",
        "deepLinking": True,
        "layout": "StandaloneLayout",
        "validatorUrl": None,
        **config,
    }
    # </script> inside a JSON string must not end the script element.
    options_js = json.dumps(options).replace("</", "<\\/")
    return f"""
    var options = {options_js};
    options.presets = [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset];
    options.plugins = [SwaggerUIBundle.plugins.DownloadUrl];
    window.onload = function () {{ window.ui = SwaggerUIBundle(options); }};
  """


def swagger_csp(config: dict) -> str:
    """The Content-Security-Policy of the page for `config`: its own origin's files, its own inline script,
    and no framing by any site."""
    digest = base64.b64encode(hashlib.sha256(_init_script(config).encode()).digest()).decode()
    # Swagger UI applies inline styles as it draws; a style runs no code, so only scripts are held to a hash.
    return (
        f"default-src 'self'; script-src 'self' 'sha256-{digest}'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def swagger_page(title: str, config: dict) -> str:
    """The HTML of a Swagger UI page for `config` (SwaggerUIBundle's options: url or urls, …)."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{html.escape(title)}</title>
  <link rel="stylesheet" href="./swagger-ui.css">
  <link rel="stylesheet" href="./index.css">
  <link rel="icon" type="image/png" href="./favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="./swagger-ui-bundle.js"></script>
  <script src="./swagger-ui-standalone-preset.js"></script>
  <script>{_init_script(config)}</script>
</body>
</html>
"""
