"""gunicorn settings shared by the five services; supervisor names the service in TOKO_SERVICE."""
import json
import os
import shutil

from gunicorn.workers.gthread import ThreadWorker

from common.http import edge_error, socket_path
from common.settings import SERVICES, get_settings

_service = os.environ.get("TOKO_SERVICE", "")
if _service not in SERVICES:
    raise SystemExit(f"TOKO_SERVICE must be one of {', '.join(SERVICES)}, got {_service!r}")
_settings = get_settings()
# Workers write their metrics here; /metrics sums them (see common/web/metrics.py).
_metrics_dir = os.path.join(os.getcwd(), "var", "metrics", _service)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir

wsgi_app = f"svc_{_service}.app:create_app()"
# Only toko's nginx (the gateway program) talks to gunicorn: it owns the service's port, buffers slow
# clients and tells the app the client's address (X-Real-IP, trusted for unix-socket peers only).
_socket = socket_path(_service)
os.makedirs(_socket.parent, mode=0o700, exist_ok=True)
bind = f"unix:{_socket}"
umask = 0o077
proc_name = f"svc_{_service}"


class _EnvelopeSocket:
    """A client's socket that turns the HTML page gunicorn writes for its own refusals (a malformed request
    line or header, too many header fields) into the contract's envelope, with the headers nginx's own
    error pages carry."""

    def __init__(self, sock):
        self._sock = sock

    def __getattr__(self, name):
        return getattr(self._sock, name)

    def sendall(self, data: bytes) -> None:
        _, status, reason = data.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        code, message = edge_error(int(status), reason)
        request_id = os.urandom(16).hex()  # the request's own is unread, or not to be trusted
        details = {"request_id": request_id} if status == "500" else {}
        body = json.dumps({"error": {"code": code, "message": message, "details": details}}).encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nX-Request-ID: {request_id}\r\n"
            "X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n\r\n"
        )
        self._sock.sendall(head.encode("latin-1") + body)


class EnvelopeWorker(ThreadWorker):
    """gunicorn's gthread worker, answering what gunicorn itself refuses in the envelope, not in HTML."""

    def handle_error(self, req, client, addr, exc):
        super().handle_error(req, _EnvelopeSocket(client), addr, exc)


worker_class = EnvelopeWorker
workers = _settings.workers
threads = _settings.threads
# The pool holds one connection per thread: workers x threads x 5 services stays under max_connections.
graceful_timeout = _settings.graceful_timeout
timeout = 30
# nginx keeps idle upstream connections 50 s (keepalive_timeout in toko/gateway.py): gunicorn must
# not close one first, or a request nginx sends on it at that moment fails.
keepalive = 75
# gunicorn's largest request line: a v2 list's cursor (up to 2 KiB) and a percent-encoded search fit.
limit_request_line = 8190
# Five masters run side by side: gunicorn 27's control socket sits at one path per user and would clash.
control_socket_disable = True
accesslog = None  # the app writes one JSON line per request itself
errorlog = "-"
loglevel = "info"
# gunicorn's own lines (booting, signals, a worker exiting) go through the root logger as the service's
# JSON lines, like the rest of its log, instead of its default text format.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "INFO", "handlers": ["json"]},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
    },
    "handlers": {"json": {"()": "common.logs.json_handler", "service": _service}},
    "formatters": {},
}
# Let workers recycle slowly so a leak cannot grow without bound; jitter avoids restarting together.
# A new worker costs about 0.75 s of CPU (imports, the app and its OpenAPI document): at 20,000 a busy
# worker recycled every 20 s and spent some 4% of a core on it, and a benchmark round that met a
# recycle lost a third of its throughput. 100,000 still recycles a busy worker every few minutes.
max_requests = 100000
max_requests_jitter = 10000


def on_starting(server):
    # A fresh master starts fresh series: files of a previous run would be summed in forever.
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_fork(server, worker):
    # Connections must never be shared across processes.
    from common.db.session import dispose_engines

    dispose_engines()

