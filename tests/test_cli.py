"""The `meihua` command line, run for real: the installed console script in a subprocess,
in an empty working directory, with nothing configured but what each test sets."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from meihua.resolvers.auth import verify_password
from tests.conftest import stop

ADMIN_PASSWORD = "s3cret-admin-pass"

_script = Path(sys.executable).with_name("meihua")
MEIHUA = (
    [str(_script)]
    if _script.exists()
    else [shutil.which("meihua")]
    if shutil.which("meihua")
    else [sys.executable, "-c", "import sys; from meihua.cli import main; sys.exit(main())"]
)


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh machine: no Meihua configuration at all."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "BROADCAST_URL", "SECRET_KEY", "PORT"}
        and not key.startswith("MEIHUA_")
    }
    env.update(extra)
    return env


def meihua(*args: str, cwd: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*MEIHUA, *args],
        cwd=cwd,
        env=_clean_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _users(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT username, is_super_admin, is_active, password_hash FROM users"
        ).fetchall()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_help_lists_the_commands(tmp_path):
    result = meihua("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("serve", "migrate", "create-admin", "export-schema"):
        assert command in result.stdout


def test_migrate_creates_a_new_database(tmp_path):
    path = tmp_path / "data" / "crm.sqlite3"
    path.parent.mkdir()
    url = f"sqlite://{path}"

    first = meihua("migrate", cwd=tmp_path, DATABASE_URL=url)
    assert first.returncode == 0, first.stderr
    assert "applied models.0001_initial" in first.stdout
    assert "Database is up to date." in first.stdout
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT name FROM department").fetchall() == [("Office",)]
        assert conn.execute("SELECT count(*) FROM role").fetchone() == (4,)

    again = meihua("migrate", cwd=tmp_path, DATABASE_URL=url)
    assert again.returncode == 0, again.stderr
    assert "applied" not in again.stdout
    assert "Database is up to date." in again.stdout


def test_create_admin_is_idempotent(tmp_path):
    path = tmp_path / "crm.sqlite3"
    url = f"sqlite://{path}"
    args = ("create-admin", "--username", "boss", "--password", ADMIN_PASSWORD)

    first = meihua(*args, cwd=tmp_path, DATABASE_URL=url)
    assert first.returncode == 0, first.stderr
    assert "Created super admin 'boss'" in first.stdout

    second = meihua(*args, cwd=tmp_path, DATABASE_URL=url)
    assert second.returncode == 0, second.stderr
    assert "nothing to do" in second.stdout
    assert "applied" not in second.stdout  # the database was already up to date

    [(username, is_super_admin, is_active, password_hash)] = _users(path)
    assert (username, bool(is_super_admin), bool(is_active)) == ("boss", True, True)
    assert verify_password(password_hash, ADMIN_PASSWORD)


def test_create_admin_resets_a_forgotten_password(tmp_path):
    url = f"sqlite://{tmp_path / 'crm.sqlite3'}"
    assert meihua("create-admin", "--username", "boss", "--password", ADMIN_PASSWORD,
                  cwd=tmp_path, DATABASE_URL=url).returncode == 0  # fmt: skip
    again = meihua("create-admin", "--username", "boss", "--password", "a-brand-new-one",
                   cwd=tmp_path, DATABASE_URL=url)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "Updated" in again.stdout
    [(_, _, _, password_hash)] = _users(tmp_path / "crm.sqlite3")
    assert verify_password(password_hash, "a-brand-new-one")
    assert not verify_password(password_hash, ADMIN_PASSWORD)


def test_create_admin_refuses_a_weak_password(tmp_path):
    path = tmp_path / "crm.sqlite3"
    result = meihua(
        "create-admin", "--username", "boss", "--password", "short",
        cwd=tmp_path, DATABASE_URL=f"sqlite://{path}",
    )  # fmt: skip
    assert result.returncode != 0
    assert "Password must be at least" in result.stderr
    assert "Traceback" not in result.stderr
    assert _users(path) == []


def test_production_without_secret_key_is_refused(tmp_path):
    path = tmp_path / "crm.sqlite3"
    result = meihua(
        "migrate", cwd=tmp_path, DATABASE_URL=f"sqlite://{path}", MEIHUA_ENV="production"
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr
    assert not path.exists()


def test_serve_refuses_several_workers_with_the_memory_bus(tmp_path):
    result = meihua(
        "serve", "--workers", "2", "--port", str(_free_port()), cwd=tmp_path, timeout=30
    )
    assert result.returncode != 0
    assert "BROADCAST_URL" in result.stderr
    assert "Traceback" not in result.stderr
    # Refused up front: nothing was migrated or served.
    assert not (tmp_path / "meihua.sqlite3").exists()


def test_export_schema_prints_the_checked_in_sdl(tmp_path, repo_root):
    result = meihua("export-schema", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (repo_root / "schema.graphql").read_text(encoding="utf-8")
    assert "type Query" in result.stdout and "login(" in result.stdout


def test_serve_on_a_fresh_directory(tmp_path):
    """`meihua serve` with nothing configured: SQLite file, migrations, HTTP, login."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    out, err = tmp_path / "serve.out", tmp_path / "serve.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        server = subprocess.Popen(
            [*MEIHUA, "serve", "--port", str(port)],
            cwd=tmp_path,
            env=_clean_env(),
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=base, timeout=2) as client:
            while True:
                assert server.poll() is None, (
                    f"server exited:\n{out.read_text()}\n{err.read_text()}"
                )
                try:
                    health = client.get("/healthz")
                    if health.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"no /healthz after 60 s:\n{err.read_text()}"
                time.sleep(0.1)
            assert health.json()["status"] == "ok"
            # It made its own database in the working directory.
            assert (tmp_path / "meihua.sqlite3").exists()

            # Nobody can sign in yet.
            login = (
                "mutation($u: String!, $p: String!) { login(username: $u, password: $p) "
                "{ token user { username isSuperAdmin } } }"
            )
            variables = {"u": "boss", "p": ADMIN_PASSWORD}
            reply = client.post("/graphql", json={"query": login, "variables": variables})
            assert reply.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

            created = meihua(
                "create-admin", "--username", "boss", "--password", ADMIN_PASSWORD, cwd=tmp_path
            )
            assert created.returncode == 0, created.stderr

            reply = client.post("/graphql", json={"query": login, "variables": variables})
            body = reply.json()
            assert "errors" not in body, body
            assert body["data"]["login"]["user"] == {"username": "boss", "isSuperAdmin": True}
            token = body["data"]["login"]["token"]

            reply = client.get(
                "/graphql",
                params={"query": "{ me { username } }"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert reply.json() == {"data": {"me": {"username": "boss"}}}

            page = client.get("/graphql", headers={"Accept": "text/html"})
            assert page.status_code == 200 and "graphiql" in page.text.lower()
    finally:
        stop(server)
    # No SECRET_KEY was set: the development default must have been announced loudly.
    log = err.read_text() + out.read_text()
    assert "SECRET_KEY is not set" in log
    assert "applied models.0001_initial" in log


def test_unopenable_sqlite_file_fails_with_a_message(tmp_path):
    """A missing folder used to leave the command hanging forever (tortoise kept its lock)."""
    url = f"sqlite://{tmp_path / 'no-such-folder' / 'crm.sqlite3'}"
    for args in (
        ("migrate",),
        ("create-admin", "--username", "boss", "--password", ADMIN_PASSWORD),
    ):
        result = meihua(*args, cwd=tmp_path, DATABASE_URL=url, timeout=20)
        assert result.returncode != 0
        assert "no-such-folder" in result.stderr
        assert "Traceback" not in result.stderr
