"""gunicorn settings shared by the five services; supervisor names the service in TOKO_SERVICE."""
import os
import shutil

from toko.gateway import socket_path
from common.settings import SERVICES, get_settings

_service = os.environ.get("TOKO_SERVICE", "")
if _service not in SERVICES:
    raise SystemExit(f"TOKO_SERVICE must be one of {', '.join(SERVICES)}, got {_service!r}")
_settings = get_settings()
# Workers write their metrics here; /metrics sums them (see common/web/metrics.py).
_metrics_dir = os.path.join(os.getcwd(), "var", "metrics", _service)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir

wsgi_app = f"svc_{_service}.app:create_app()"
# Only toko's nginx (toko/gateway.py) talks to gunicorn: it owns the service's port, buffers slow
# clients and tells the app the client's address (X-Real-IP, trusted for unix-socket peers only).
_socket = socket_path(_service)
os.makedirs(_socket.parent, mode=0o700, exist_ok=True)
bind = f"unix:{_socket}"
umask = 0o077
proc_name = f"svc_{_service}"
worker_class = "gthread"
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

