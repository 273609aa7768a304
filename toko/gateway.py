"""The edge: one nginx owning every port a client can reach, rendered from the settings.

Each service's gunicorn listens on a unix socket (`socket_path`); nginx listens on the service's own
port (TOKO_<NAME>_PORT) and on the gateway port (TOKO_GATEWAY_PORT), buffers whole requests before a
worker thread sees them (slow clients cost nginx a connection, not gunicorn a thread), sets X-Real-IP
and X-Request-ID for the app, and answers its own and upstream failures in the contract's envelope.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from common.http import EDGE_ERRORS, METHODS, socket_path
from common.settings import Settings
from common.swagger import dist_dir, swagger_csp, swagger_page

# Longest prefix wins in nginx; each service also stays reachable whole under /_<service>/.
ROUTES = {
    "user": ["/v1/users", "/v1/sessions"],
    "otp": ["/v1/otps"],
    "item": ["/v1/items", "/v1/categories", "/v2/items", "/v2/categories"],
    "transaction": ["/v1/transactions"],
    "report": ["/v1/reports"],
}
# Operator endpoints: scraped and probed on the service ports from the host, never published on the gateway.
OPERATOR_PATHS = ("metrics", "readyz")
# What the gateway compresses (above GZIP_MIN_BYTES) for clients that accept gzip.
GZIP_TYPES = ("application/json", "text/csv", "image/svg+xml")
GZIP_MIN_BYTES = 2048
_ERROR_URI = "/_toko_error/"

# Anonymous catalogue reads, kept by the edge for as long as the item service's Cache-Control says (one
# second). A request with a bearer token or a session cookie neither reads nor fills the cache; nginx
# itself stores no answer that sets a cookie or says no-store. One request per key fills it while the
# others wait for it (lock); while it refreshes an expired entry, the others get that entry (stale while
# updating), but the request that refreshes it waits for the fresh answer. An entry unread for 5 s is
# dropped, so a stale one is never much older than a second.
_PRIVATE_MAPS = """    map $http_authorization $toko_bearer { "" 0; default 1; }
    map $http_cookie $toko_session_cookie { "~(^|;)\\s*toko_session=" 1; default 0; }"""
_CATALOGUE_CACHE = (
    "proxy_cache toko_catalogue; proxy_cache_key $request_uri|$http_accept_encoding; "
    "proxy_cache_lock on; proxy_cache_lock_timeout 5s; proxy_cache_use_stale updating; "
    "proxy_cache_bypass $toko_bearer $toko_session_cookie; "
    "proxy_no_cache $toko_bearer $toko_session_cookie; add_header X-Toko-Cache $upstream_cache_status always;"
)


def _cache_path(settings: Settings, var_dir: Path) -> str:
    if not settings.edge_cache:
        return ""
    return (
        f"    proxy_cache_path {var_dir}/cache levels=1:2 keys_zone=toko_catalogue:8m "
        f"max_size={settings.edge_cache_max_mb}m inactive=5s use_temp_path=off;\n{_PRIVATE_MAPS}"
    )


def _catalogue_locations(settings: Settings, upstream: str) -> list[str]:
    """The item service's catalogue paths, answered from the edge's cache when it is on."""
    if not settings.edge_cache:
        return []
    return [
        f"        location {prefix} {{ {_proxy(upstream)} {_CATALOGUE_CACHE} }}" for prefix in ROUTES["item"]
    ]


# A method outside the contract's set is refused before any location (and any upstream) sees it.
# volatile: the error page's internal redirect (made a GET) asks again, and must not be refused too.
_METHOD_MAP = (
    "    map $request_method $toko_method_refused {\n        volatile;\n        default 1;\n"
    + "".join(f"        {method} 0;\n" for method in sorted(METHODS))
    + "    }"
)
_REFUSE_METHODS = "        if ($toko_method_refused) { return 405; }"
# One request id per request: the client's when it is well formed (as the app's rule), else nginx's own.
_REQUEST_ID_MAP = """    map $http_x_request_id $toko_request_id {
        "~^[A-Za-z0-9._:-]{1,128}$" $http_x_request_id;
        default $request_id;
    }"""
# The storefront: static files served as they are (no build step), on the API's own origin.
WEB_ROOT = Path(__file__).resolve().parents[1] / "web"
STOREFRONT_TYPES = "text/html html; text/css css; text/javascript js; image/svg+xml svg; image/png png;"
# Nothing from another origin: the page, its scripts, styles and images all come from this one.
STOREFRONT_CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def upstream_servers(settings: Settings, service: str, root: Path | None = None) -> list[str]:
    """The `server` lines of a service's upstream: this host's socket, or, on a gateway in front of
    several hosts (TOKO_GATEWAY_HOSTS), every host's own gateway, each passively health-checked."""
    if not settings.gateway_hosts:
        return [f"unix:{socket_path(service, root)}"]
    check = f"max_fails={settings.gateway_max_fails} fail_timeout={settings.gateway_fail_timeout_seconds}s"
    return [
        f"{host if ':' in host else f'{host}:{settings.gateway_port}'} {check}"
        for host in settings.gateway_hosts
    ]


def _json(status: int, code: str, message: str, details: str = "{}") -> str:
    """An nginx `return` string holding the envelope ($variables in details are expanded by nginx)."""
    body = '{"error": {"code": "%s", "message": %s, "details": %s}}' % (code, json.dumps(message), details)
    return "'" + body.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _own_headers(extra: dict | None = None) -> str:
    """Headers on every response nginx makes itself (add_header does not inherit into a location that
    has its own, so each such location gets the whole set)."""
    headers = {
        "X-Request-ID": "$toko_request_id",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
        **(extra or {}),
    }
    return " ".join(f"add_header {name} {value} always;" for name, value in headers.items())


def _error_locations() -> str:
    # URIs, not named locations: nginx cannot redirect a request whose request line it could not parse
    # (400, 414) to a named location, while an internal URI works for every error.
    lines = []
    for source, (status, code, message) in EDGE_ERRORS.items():
        details = '{"request_id": "$toko_request_id"}' if status == 500 else "{}"
        extra = {"Retry-After": "1"} if status == 503 else None
        lines.append(
            f"        location = {_ERROR_URI}{source} {{ internal; default_type application/json; "
            f"{_own_headers(extra)} return {status} {_json(status, code, message, details)}; }}"
        )
    return "\n".join(lines)


def _error_pages(indent: str = "    ", sep: str = "\n") -> str:
    return sep.join(
        f"{indent}error_page {source} ={status} {_ERROR_URI}{source};"
        for source, (status, _, _) in EDGE_ERRORS.items()
    )


# In front of several hosts, retrying on another host is safe for reads, and for a POST only under an
# Idempotency-Key (the service replays the first answer of a key instead of charging again). Any other
# request ($toko_once) goes to one host only: its client sees the failure and decides.
_RETRY_MAP = """    map "$request_method:$http_idempotency_key" $toko_once {
        default 1;
        "~^(GET|HEAD):" 0;
        "~^POST:." 0;
    }"""


def _balanced_route(match: str, service: str) -> str:
    """A gateway location over several hosts; the path goes on unchanged (each host's gateway routes it).

    A location with an error_page of its own inherits none, so it repeats the envelope pages.
    """
    return (
        f"        location {match} {{ {_error_pages('', ' ')} error_page 418 = @svc_{service}_once; "
        f"if ($toko_once) {{ return 418; }} {_proxy(f'svc_{service}')} }}"
    )


def _proxy(upstream: str, prefix: str = "", path: str = "") -> str:
    """proxy_pass with the headers the app relies on (a location's proxy_set_header replaces all
    inherited ones, so every proxying location carries the whole set)."""
    return (
        f"proxy_pass http://{upstream}{path}; "
        # nginx's id, the one it logged and sent on, also on an answer the app did not make (gunicorn's own).
        "add_header X-Request-ID $toko_request_id always; "
        "proxy_set_header Host $http_host; "
        'proxy_set_header Connection ""; '
        "proxy_set_header X-Real-IP $remote_addr; "
        "proxy_set_header X-Request-ID $toko_request_id; "
        f'proxy_set_header X-Forwarded-Prefix "{prefix}"; '
        'proxy_set_header X-Forwarded-For "";'
    )


def _service_server(settings: Settings, service: str) -> str:
    catalogue = _catalogue_locations(settings, f"svc_{service}") if service == "item" else []
    return f"""    server {{
        listen {settings.bind_host}:{settings.port_for(service)};
{_REFUSE_METHODS}
{chr(10).join(catalogue)}
        location / {{ {_proxy(f"svc_{service}")} }}
{_error_locations()}
    }}"""


def _storefront() -> str:
    """web/ at /: any path that is not one of its files is the 404 envelope, any method but GET or HEAD
    the 405 one. File names carry no content hash (no build step), so browsers revalidate every file
    with its ETag (`no-cache`): after an upgrade no page mixes old and new modules."""
    headers = _own_headers(
        {
            "Cache-Control": "no-cache",
            "Content-Security-Policy": f'"{STOREFRONT_CSP}"',
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "same-origin",
        }
    )
    return (
        f"        location / {{ root {WEB_ROOT}; try_files $uri $uri/index.html =404; "
        f"types {{ {STOREFRONT_TYPES} }} default_type application/octet-stream; charset utf-8; "
        f"charset_types text/css text/javascript image/svg+xml; "
        f"gzip_types text/css text/javascript image/svg+xml; {headers} }}"
    )


def _gateway_server(settings: Settings, var_dir: Path) -> str:
    locations = []
    for service, prefixes in ROUTES.items():
        if settings.gateway_hosts:
            locations += [_balanced_route(match, service) for match in (*prefixes, f"/_{service}/")]
            locations.append(
                f"        location @svc_{service}_once {{ {_proxy(f'svc_{service}')} "
                "proxy_next_upstream off; }"
            )
            continue
        cached = _catalogue_locations(settings, f"svc_{service}") if service == "item" else []
        locations += cached or [
            f"        location {prefix} {{ {_proxy(f'svc_{service}')} }}" for prefix in prefixes
        ]
        locations.append(
            f"        location /_{service}/ {{ {_proxy(f'svc_{service}', f'/_{service}', '/')} }}"
        )
    if settings.gateway_hosts:
        locations.append(
            f"        proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;\n"
            f"        proxy_next_upstream_timeout {settings.edge_read_timeout}s;\n"
            "        recursive_error_pages on;"
        )
    operator = "|".join(OPERATOR_PATHS)
    services = "|".join(ROUTES)
    not_found = _json(404, "not_found", "No service serves this path.")
    docs_headers = _own_headers(
        {"Content-Security-Policy": f'"{swagger_csp(_docs_config())}"', "X-Frame-Options": "DENY"}
    )
    return f"""    server {{
        listen {settings.bind_host}:{settings.gateway_port};
{_REFUSE_METHODS}
        gzip on;
        gzip_types {" ".join(GZIP_TYPES)};
        gzip_min_length {GZIP_MIN_BYTES};
        gzip_proxied any;
        gzip_vary on;
        gzip_comp_level 5;
{chr(10).join(locations)}
        location ~ ^/_({services})/({operator})$ {{ default_type application/json; {_own_headers()} return 404 {not_found}; }}
        location = /healthz {{ access_log off; default_type application/json; {_own_headers()} return 200 '{{"data": {{"service": "gateway", "status": "ok"}}}}'; }}
        location = /docs {{ {docs_headers} return 301 /docs/; }}
        location = /docs/ {{ types {{ }} default_type "text/html; charset=utf-8"; {docs_headers} root {var_dir}/docs; try_files /index.html =404; }}
        location /docs/ {{ types {{ text/css css; application/javascript js; image/png png; }} {_own_headers()} alias {dist_dir()}/; }}
{_storefront()}
{_error_locations()}
    }}"""


def render_config(
    settings: Settings,
    var_dir: Path,
    root: Path | None = None,
    *,
    services: tuple | None = None,
    gateway: bool = True,
) -> str:
    """nginx.conf for the service ports and the gateway; `root` is where var/run (the sockets) lives.

    `services` (default: all) are the services whose own port nginx serves; `gateway` adds the gateway.
    """
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers keep toko's identity to reach its sockets
    upstreams = "\n".join(
        f"    upstream svc_{service} {{ "
        # Over several hosts, every nginx worker shares one turn and one count of a host's failures.
        + (f"zone svc_{service} 64k; " if settings.gateway_hosts else "")
        + " ".join(f"server {server};" for server in upstream_servers(settings, service, root))
        + " keepalive 16; keepalive_timeout 50s; }"
        for service in settings.ports
    )
    # A gateway in front of several hosts serves no service port of its own; a host behind one believes
    # the client address the gateway sends (X-Real-IP) when the peer is one of TOKO_TRUSTED_PROXIES.
    servers = (
        ""
        if settings.gateway_hosts
        else "\n".join(_service_server(settings, service) for service in (services or settings.ports))
    )
    balancing = _RETRY_MAP if settings.gateway_hosts else ""
    realip = "".join(f"    set_real_ip_from {proxy};\n" for proxy in settings.trusted_proxies)
    if realip:
        realip += "    real_ip_header X-Real-IP;"
    return f"""# Rendered by `toko gateway` from toko/gateway.py; do not edit.
{user}worker_processes auto;
worker_rlimit_nofile 16384;
pid {var_dir}/nginx.pid;
error_log stderr warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
    server_tokens off;
    absolute_redirect off;
    client_body_temp_path {var_dir}/client_body;
    proxy_temp_path {var_dir}/proxy;
    fastcgi_temp_path {var_dir}/fastcgi;
    uwsgi_temp_path {var_dir}/uwsgi;
    scgi_temp_path {var_dir}/scgi;
    client_max_body_size {settings.max_body_bytes};
    # A slow client holds an nginx connection (cheap), never a gunicorn thread: whole headers within
    # 10 s, no gap over 10 s in a body, which nginx buffers before passing the request on.
    client_header_timeout 10s;
    client_body_timeout 10s;
    send_timeout 30s;
    keepalive_timeout 30s;
    large_client_header_buffers 4 8k;
    proxy_http_version 1.1;
    proxy_connect_timeout 2s;
    proxy_read_timeout {settings.edge_read_timeout}s;
    proxy_send_timeout 60s;
    proxy_request_buffering on;
    proxy_buffering on;
{_REQUEST_ID_MAP}
{_METHOD_MAP}
{_cache_path(settings, var_dir)}
    # nginx writes the one access line of every request, in C and buffered (a write per 32 KiB, not per
    # line, through supervisord's pipe into var/log/gateway.log); the app adds what only it knows (the
    # route it matched, the user) as response headers that nginx logs and never passes on.
    log_format toko escape=json '{{"ts": "$time_iso8601", "level": "info", "service": "$toko_service", '
        '"logger": "toko.access", "msg": "request", "request_id": "$toko_request_id", '
        '"method": "$toko_method", "path": "$uri", "route": "$upstream_http_x_toko_route", '
        '"status": $status, "upstream_status": "$upstream_status", "user_id": "$upstream_http_x_toko_user", '
        '"duration_s": $request_time, "port": "$server_port", "cache": "$upstream_cache_status"}}';
    # The method as the client sent it: an error page turns the request into a GET ($request_method).
    map $request $toko_method {{ "~^(?<toko_sent>[^ ]+) " $toko_sent; default $request_method; }}
    map $upstream_http_x_toko_service $toko_service {{ "" edge; default $upstream_http_x_toko_service; }}
    access_log /dev/stdout toko buffer=32k flush=1s;
    proxy_hide_header X-Toko-Service;
    proxy_hide_header X-Toko-Route;
    proxy_hide_header X-Toko-User;
    proxy_hide_header X-Request-ID;
{_error_pages()}
{balancing}
{realip}
{upstreams}
{servers}
{_gateway_server(settings, var_dir) if gateway else ""}
}}
"""


def _docs_config() -> dict:
    urls = [{"url": f"/_{service}/openapi.json", "name": service} for service in ROUTES]
    return {"urls": urls, "urls.primaryName": "user"}


def render_docs_page(settings: Settings) -> str:
    """The gateway's one Swagger UI page listing every service's OpenAPI document."""
    return swagger_page("toko API", _docs_config())


def exec_nginx(settings: Settings, var_dir: Path) -> None:
    """Render the config and replace this process with nginx in the foreground."""
    nginx = find_nginx()
    if nginx is None:
        raise SystemExit("nginx is not installed: toko's ports need it (Debian: apt-get install nginx)")
    # nginx would retry a taken port for 2.5 s and exit; refusing at once (before startsecs) makes
    # supervisor count a failed start, so the program ends FATAL with this line in its log.
    from toko.launch import check_ports

    problems = check_ports(settings)
    if problems:
        raise SystemExit("nginx cannot listen: " + "; ".join(problems))
    var_dir.mkdir(parents=True, exist_ok=True)
    (var_dir / "docs").mkdir(exist_ok=True)
    (var_dir / "docs" / "index.html").write_text(render_docs_page(settings))
    conf = var_dir / "nginx.conf"
    conf.write_text(render_config(settings, var_dir.resolve()))
    os.execv(nginx, [nginx, "-c", str(conf.resolve()), "-e", "stderr"])


def find_nginx() -> str | None:
    """nginx's path, or None when it is not installed."""
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
