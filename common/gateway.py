"""The gateway: one nginx origin (default :8080) routing by path to the five services."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from common.settings import Settings

# Longest prefix wins in nginx; each service also stays reachable whole under /_<service>/.
ROUTES = {
    "user": ["/v1/users", "/v1/sessions"],
    "otp": ["/v1/otps"],
    "item": ["/v1/items", "/v1/categories", "/v2/items", "/v2/categories"],
    "transaction": ["/v1/transactions"],
    "report": ["/v1/reports"],
}


def render_config(settings: Settings, var_dir: Path) -> str:
    upstreams = "\n".join(
        f"    upstream {service} {{ server {settings.bind_host}:{port}; keepalive 16; }}"
        for service, port in settings.ports.items())
    locations = []
    for service, prefixes in ROUTES.items():
        for prefix in prefixes:
            locations.append(f"        location {prefix} {{ proxy_pass http://{service}; }}")
        locations.append(f"        location /_{service}/ {{ proxy_pass http://{service}/; }}")
    return f"""# Rendered by `toko gateway` from common/gateway.py; do not edit.
worker_processes 1;
pid {var_dir}/nginx.pid;
error_log stderr warn;
daemon off;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {var_dir}/client_body;
    proxy_temp_path {var_dir}/proxy;
    fastcgi_temp_path {var_dir}/fastcgi;
    uwsgi_temp_path {var_dir}/uwsgi;
    scgi_temp_path {var_dir}/scgi;
    client_max_body_size {settings.max_body_bytes};
{upstreams}
    server {{
        listen {settings.bind_host}:{settings.gateway_port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Prefix "";
        proxy_connect_timeout 2s;
        proxy_read_timeout 60s;
{chr(10).join(locations)}
        location = /healthz {{ default_type application/json; return 200 '{{"data": {{"service": "gateway", "status": "ok"}}}}'; }}
        location / {{
            default_type application/json;
            return 404 '{{"error": {{"code": "not_found", "message": "No service serves this path.", "details": {{}}}}}}';
        }}
    }}
}}
"""


def exec_nginx(settings: Settings, var_dir: Path) -> None:
    """Render the config and replace this process with nginx in the foreground."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        raise SystemExit("nginx is not installed: the gateway needs it (Debian: apt-get install nginx)")
    var_dir.mkdir(parents=True, exist_ok=True)
    conf = var_dir / "nginx.conf"
    conf.write_text(render_config(settings, var_dir.resolve()))
    os.execv(nginx, [nginx, "-c", str(conf.resolve()), "-e", "stderr"])
