"""The configuration `toko gateway` and `toko pgbouncer` render for several hosts (run for real: tests/cluster)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from toko import gateway, pgbouncer
from toko.replica import render_primary_conf
from common.settings import load_settings

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def test_the_gateway_balances_each_service_over_the_hosts_with_passive_checks(tmp_path):
    settings = load_settings({"TOKO_GATEWAY_HOSTS": "10.9.0.11, 10.9.0.12:18080", "TOKO_GATEWAY_MAX_FAILS": "2",
                              "TOKO_GATEWAY_FAIL_TIMEOUT_SECONDS": "7", "TOKO_GATEWAY_PORT": "8080"})
    conf = gateway.render_config(settings, tmp_path)
    for service in settings.ports:
        assert (f"upstream svc_{service} {{ zone svc_{service} 64k; server 10.9.0.11:8080 max_fails=2 fail_timeout=7s; "
                f"server 10.9.0.12:18080 max_fails=2 fail_timeout=7s;") in conf
        assert f"location @svc_{service}_once {{" in conf
    # Only the gateway's port: the services run on the hosts.
    assert [line.strip() for line in conf.splitlines() if "listen " in line] == ["listen 127.0.0.1:8080;"]
    assert "non_idempotent" in conf and "proxy_next_upstream off" in conf and "unix:" not in conf
    if NGINX:
        (tmp_path / "nginx.conf").write_text(conf)
        checked = subprocess.run([NGINX, "-t", "-c", str(tmp_path / "nginx.conf"), "-e", "stderr"],
                                 capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr


def test_one_host_is_the_default_and_a_host_behind_a_gateway_trusts_its_address(tmp_path):
    alone = gateway.render_config(load_settings({}), tmp_path, tmp_path)
    assert "max_fails" not in alone and "$toko_once" not in alone and "set_real_ip_from" not in alone
    behind = gateway.render_config(load_settings({"TOKO_TRUSTED_PROXIES": "10.9.0.1"}), tmp_path, tmp_path)
    assert "set_real_ip_from 10.9.0.1;" in behind and "real_ip_header X-Real-IP;" in behind


def test_pgbouncer_pools_transactions_for_every_service_role():
    settings = load_settings({"DATABASE_URL": "postgresql://owner@10.9.0.1:5433/shop", "TOKO_DB_ROLES": "on",
                              "TOKO_REPORT_DATABASE_URL": "postgresql://toko_report@10.9.0.2:5434/shop",
                              "TOKO_PGBOUNCER_POOL_SIZE": "3", "TOKO_PGBOUNCER_MAX_DB_CONNECTIONS": "12"})
    conf = pgbouncer.render_config(settings, Path("/run/pgb"))
    assert "pool_mode = transaction" in conf and "auth_type = trust" in conf
    assert "default_pool_size = 3" in conf and "max_db_connections = 12" in conf
    assert "shop = host=10.9.0.1 port=5433 dbname=shop " in conf
    assert "shop_replica = host=10.9.0.2 port=5434 dbname=shop " in conf
    assert set(pgbouncer.users(settings)) == {"owner", "toko_user", "toko_otp", "toko_item", "toko_transaction",
                                              "toko_report"}
    with_passwords = load_settings({"DATABASE_URL": "postgresql://owner:pw@db/shop", "TOKO_DB_ROLES": "on",
                                    "TOKO_ITEM_DB_PASSWORD": "item-secret"})
    assert "auth_type = scram-sha-256" in pgbouncer.render_config(with_passwords, Path("/x"))
    assert '"toko_item" "item-secret"' in pgbouncer.render_userlist(with_passwords)


def test_the_primary_keeps_room_above_pgbouncer():
    settings = load_settings({"TOKO_PGBOUNCER_MAX_DB_CONNECTIONS": "20"})
    assert "max_connections = 30" in render_primary_conf(settings, 5433, 30)
    with pytest.raises(ValueError, match="TOKO_PGBOUNCER_MAX_DB_CONNECTIONS"):
        render_primary_conf(settings, 5433, 20)
