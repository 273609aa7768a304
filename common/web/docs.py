"""GET /docs: Swagger UI for the service's own OpenAPI document, assets served by the service itself."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, redirect, send_from_directory

from common.swagger import dist_dir, swagger_csp, swagger_page


def docs_blueprint(service: str) -> Blueprint:
    blueprint = Blueprint("docs", __name__)
    config = {"url": "../openapi.json"}
    page = swagger_page(f"toko {service} service", config)
    csp = swagger_csp(config)

    @blueprint.after_request
    def _not_framable(response):
        # The page, its redirect (an HTML body too) and its files: no other site may frame any of them.
        response.headers["Content-Security-Policy"] = csp
        response.headers["X-Frame-Options"] = "DENY"
        return response

    @blueprint.route("/docs")
    def docs_redirect():
        # Relative, so the redirect keeps whatever host, port and path prefix the client used.
        response = redirect("docs/", 301)
        response.autocorrect_location_header = False
        return response

    @blueprint.route("/docs/")
    def docs_page():
        return Response(page, mimetype="text/html")

    @blueprint.route("/docs/<path:filename>")
    def docs_asset(filename: str):
        return send_from_directory(dist_dir(), filename, max_age=current_app.get_send_file_max_age(filename))

    return blueprint
