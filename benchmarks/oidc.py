"""The idp beside the reference provider (panva's oidc-provider), on the same core.

Starts, for real: the idp (``idp serve``, one granian worker, on PostgreSQL and
Redis like production) and the reference provider from ``shared/oidc-bench``,
both pinned to core 0; drives ``bench/compare.sh`` from core 1 so that each
scenario runs A, B, A, B… with the same settings; prints the medians and the
ratio idp/reference per scenario. Also measures the Argon2id hash time, since
password logins/s are bounded by 1/(hash time), not by the reference's figure.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ._proc import REDIS_URL, free_port, pg_schema, pinned, started, wait_http

__all__ = ["run"]

ROOT = Path(__file__).resolve().parent.parent
SHARED_BENCH = ROOT.parent / "shared" / "oidc-bench"
BENCH_COPY = Path(tempfile.gettempdir()) / "yiwang-oidc-bench"
CITIZEN = ("11010519491231002X", "bench-password-0123")
CLIENT_ID = "benchclient0000000000001"


def argon2_hash_seconds(samples: int = 15) -> float:
    """Median wall time of one Argon2id hash at the production parameters, in this process."""
    from idp.passwords import PasswordHasher

    hasher = PasswordHasher()
    times = []
    for i in range(samples):
        t = time.perf_counter()
        hasher.hash(f"password-{i}")
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def argon2_hash_seconds_on_server_core(samples: int = 15) -> float:
    """The same, measured on core 0, where ``idp serve`` ran (the core the ceiling is for)."""
    code = f"from benchmarks.oidc import argon2_hash_seconds; print(argon2_hash_seconds({samples}))"
    done = subprocess.run(pinned([sys.executable, "-c", code], 0), cwd=ROOT, capture_output=True,  # noqa: S603
                          text=True, check=True)
    return float(done.stdout.strip())


def argon2_two_processes(samples: int = 15) -> tuple[float, float, float]:
    """``(alone, core 0, core 1)``: ms per hash in one process on core 0, then in two at once on cores 0 and 1.

    The cache-sharing cap (issue 16): the two cores share the last-level cache
    and memory bandwidth, and each hash walks 19 MiB, so a second hashing
    process slows the first; ``2 x alone / together`` is what two processes
    can give at most, against 2 for perfect scaling.
    """
    code = f"from benchmarks.oidc import argon2_hash_seconds; print(argon2_hash_seconds({samples}))"

    def start(core: int) -> subprocess.Popen[str]:
        return subprocess.Popen(pinned([sys.executable, "-c", code], core), cwd=ROOT,  # noqa: S603
                                stdout=subprocess.PIPE, text=True)

    def ms(p: subprocess.Popen[str]) -> float:
        out, _ = p.communicate()
        return float(out.strip()) * 1000

    alone = ms(start(0))
    first, second = start(0), start(1)
    return alone, ms(first), ms(second)


def _print_login_ratio(compare_output: object, hash_s: float) -> None:
    """Password logins/s of the idp (compare.sh's median B) against the hash ceiling."""
    if not isinstance(compare_output, str):
        return
    table = False  # the medians follow compare.sh's "scenario  A ops/s  B ops/s …" header
    for line in compare_output.splitlines():
        parts = line.split()
        table = table or parts[:1] == ["scenario"]
        if table and len(parts) > 3 and parts[0] == "login":
            try:
                logins = float(parts[2])
            except ValueError:
                return
            print(f"password logins: {logins:.1f}/s = {logins * hash_s:.2f} x 1/(hash time) (issue 16: >= 0.75)")
            return


def _prepare_bench_copy() -> Path:
    if not SHARED_BENCH.is_dir():
        raise RuntimeError(f"{SHARED_BENCH} not found")
    if not (BENCH_COPY / "node_modules" / "oidc-provider").is_dir():
        shutil.rmtree(BENCH_COPY, ignore_errors=True)
        shutil.copytree(SHARED_BENCH, BENCH_COPY)
        for p in BENCH_COPY.rglob("*"):
            p.chmod(p.stat().st_mode | 0o200)
        cmd = ["npm", "ci"] if (BENCH_COPY / "package-lock.json").exists() else ["npm", "install"]
        subprocess.run(cmd, cwd=BENCH_COPY, check=True, stdout=subprocess.DEVNULL)  # noqa: S603
    return BENCH_COPY


def _idp(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    exe = str(Path(sys.executable).parent / "idp")
    done = subprocess.run(  # noqa: S603
        [exe, *args], env=env, input=stdin, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"idp {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout


def _granian_worker(pid: int) -> int:
    """The worker process under ``idp serve`` (granian's supervisor forks it), else ``pid``.

    compare.sh reports the CPU of the PID it is given; the supervisor idles.
    """
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return pid
    return int(children[0]) if len(children) == 1 else pid


DPOP_SCENARIOS = "client_credentials,client_credentials_dpop,userinfo,userinfo_dpop,refresh,refresh_dpop"
"""The DPoP scenarios (RFC 9449) with their bearer twins, so each ratio is measured in the same run."""


def run(*, rounds: int = 3, duration: int = 8, scenarios: str | None = None,
        threads: int | None = None, dpop: bool = False, dpop_nonce: bool = False) -> dict[str, object]:
    """``dpop``: the reference provider with DPoP on (``REF_OP_DPOP=1``) and, unless ``scenarios``
    says otherwise, :data:`DPOP_SCENARIOS`; ``dpop_nonce``: both sides require server nonces
    (``REF_OP_DPOP_NONCE=1``; the idp at its token and userinfo endpoints)."""
    dpop = dpop or dpop_nonce
    if dpop and not scenarios:
        scenarios = DPOP_SCENARIOS
    bench = _prepare_bench_copy()
    work = Path(tempfile.mkdtemp(prefix="yiwang-bench-"))
    port = free_port()
    results: dict[str, object] = {}
    with pg_schema() as db_url:
        env = {
            **os.environ,
            "YIWANG_HOME": str(work / "home"),
            "YIWANG_DATABASE_URL": db_url,
            "YIWANG_REDIS_URL": REDIS_URL,
            "YIWANG_REDIS_PREFIX": f"bench{port}:",
            "YIWANG_ISSUER": f"http://127.0.0.1:{port}",
            "YIWANG_LOG_LEVEL": "warning",
        }
        if dpop_nonce:
            env["YIWANG_IDP_DPOP_NONCE_ENDPOINTS"] = "token,userinfo"
        _idp(env, "init")
        _idp(env, "users", "add", "--id-number", CITIZEN[0], "--name", "压测用户", "--password-stdin", stdin=CITIZEN[1] + "\n")
        client = json.loads(
            _idp(
                env, "clients", "add", "--name", "oidc-bench", "--client-id", CLIENT_ID,
                "--redirect-uri", "http://127.0.0.1:9100/cb",
                "--grant-type", "authorization_code", "--grant-type", "refresh_token",
                "--grant-type", "client_credentials",
                "--scope", "openid", "--scope", "profile", "--scope", "email",
                "--scope", "offline_access", "--scope", "certs:issue",
                "--first-party", "--json",
            )
        )
        config = json.loads((bench / "bench" / "config.template.json").read_text())
        config["issuer"] = env["YIWANG_ISSUER"]
        config["user"] = {"username": CITIZEN[0], "password": CITIZEN[1]}
        config["clients"]["confidential"].update(client_id=client["client_id"], client_secret=client["client_secret"])
        # The template's "api:read" is no scope of ours: the scope policy answers invalid_scope
        # (idp/oauth/scopes.py). An agency's real client_credentials scope does the same work.
        config["client_credentials"] = {**config.get("client_credentials", {}), "scope": "certs:issue"}
        config["login_adapter_options"] = {
            "usernameField": "id_number",
            "passwordField": "password",
            "consentMarker": "data-consent",
        }
        cfg_file = work / "yiwang.json"
        cfg_file.write_text(json.dumps(config, indent=2))

        serve = [str(Path(sys.executable).parent / "idp"), "serve", "--port", str(port), "--workers", "1"]
        if threads:
            serve += ["--threads", str(threads)]  # otherwise idp serve's default
        idp_argv = pinned(serve, 0)
        ref_env = {**os.environ, "REF_OP_QUIET": "1"}
        if dpop:
            ref_env["REF_OP_DPOP"] = "1"
        if dpop_nonce:
            ref_env["REF_OP_DPOP_NONCE"] = "1"
        with (
            started(idp_argv, env=env, log=work / "idp.log") as idp_proc,
            started(pinned(["node", "ref-op/server.js"], 0), env=ref_env, log=work / "ref.log", cwd=bench) as ref_proc,
        ):
            wait_http(f"{env['YIWANG_ISSUER']}/.well-known/openid-configuration")
            wait_http("http://127.0.0.1:3000/.well-known/openid-configuration")
            argv = [
                "bash", "bench/compare.sh", "--rounds", str(rounds), "--duration", str(duration),
                "--pid-a", str(ref_proc.pid), "--pid-b", str(_granian_worker(idp_proc.pid)),
                "--out", str(work / "compare"),
            ]
            if shutil.which("taskset"):
                argv += ["--cpu", "1"]
            if scenarios:
                argv += ["--scenarios", scenarios]
            argv += ["bench/config.ref-op.json", str(cfg_file)]
            done = subprocess.run(argv, cwd=bench, capture_output=True, text=True, check=False)  # noqa: S603
            print(done.stdout, end="")
            if done.returncode != 0:
                print(done.stderr, end="", file=sys.stderr)
            results["compare_rc"] = done.returncode
            results["compare_output"] = done.stdout
            results["summary_json"] = str(work / "compare" / "summary.json")  # benchmarks.summary reads it
    hash_s = argon2_hash_seconds_on_server_core()
    results["argon2id_hash_ms"] = hash_s * 1000
    print(f"Argon2id hash (m=19 MiB, t=2, p=1) on the server's core: {hash_s * 1000:.1f} ms"
          f" -> ceiling {1 / hash_s:.1f} password logins/s per core")
    _print_login_ratio(results.get("compare_output"), hash_s)
    alone, core0, core1 = argon2_two_processes()
    results["argon2id_two_processes_ms"] = (alone, core0, core1)
    together = (core0 + core1) / 2
    print(f"Argon2id cache sharing: {alone:.1f} ms alone on core 0, {core0:.1f} / {core1:.1f} ms with a second"
          f" hashing process on core 1 -> two processes give at most {2 * alone / together:.2f}x one (2.00 = no sharing cost)")
    print(f"(work files in {work})")
    return results
