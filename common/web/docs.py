"""GET /docs: Swagger UI for the service's own OpenAPI document, assets served by the service itself."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, redirect, send_from_directory

from common.swagger import dist_dir, swagger_page


def docs_blueprint(service: str) -> Blueprint:
    blueprint = Blueprint("docs", __name__)
    page = swagger_page(f"toko {service} service", {"url": "../openapi.json"})

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
