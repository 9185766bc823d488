"""``python -m demo.serve``: the idp, the certificate store and two demo portals, together.

A small in-process supervisor in the spirit of honcho/foreman: it starts each
service as a subprocess, prefixes its output with the service's name, and
stops all of them (SIGTERM, then SIGKILL after a grace period) when one exits
or when it gets Ctrl-C. ``make demo`` runs ``idp init --demo`` and
``certstore init --demo`` first; if the demo clients are missing this runs
``idp init --demo`` itself, and it issues the demo certificates
(``certstore init --demo --with-certificates``, idempotent) before starting.

Ports: idp 5000, certstore 5100 (when its CLI is installed), portal A 5201,
portal B 5202. Sign in at portal A, open portal B — no login form — and sign
out at either: both portals get a back-channel logout token. The citizen's
wallet (certstore ``/wallet``) signs in through the idp the same way.

idp and certstore never import each other; this is where they meet. ``idp
init --demo`` registers certstore's client and the demo agencies' clients and
writes their secrets to ``YIWANG_HOME/demo-clients.json``; :func:`certstore_env`
turns that into certstore's ``YIWANG_CERTSTORE_CLIENT_ID`` /
``YIWANG_CERTSTORE_CLIENT_SECRET`` / ``YIWANG_ISSUER``, and the banner shows how
an agency gets a token and issues with curl (docs/agency-guide.md).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

__all__ = [
    "Service",
    "Supervisor",
    "main",
    "demo_services",
    "certstore_env",
    "curl_example",
    "counter_lines",
    "load_demo",
    "seed_certificates",
    "tsa_service",
]

IDP_PORT = 5000
CERTSTORE_PORT = 5100
TSA_PORT = 5180
# Lines that are not the demo user's business (issue 18): servers' advice for production
# deployments the demo is not, and library deprecation notes. Real warnings still show.
_NOISE = (
    "This is a development server. Do not use it in a production deployment",
    "Configuration allows spawning up to",
    "Websockets are not supported on WSGI",
    "CryptographyDeprecationWarning",
    "from cryptography.hazmat.primitives.asymmetric.dsa import",
    "Validation/revocation info will be embedded, but fetching is not allowed",
    "alembic.runtime.plugins",
)
_COLOURS = ("\033[36m", "\033[33m", "\033[32m", "\033[35m", "\033[34m")
_RESET = "\033[0m"


@dataclass
class Service:
    name: str
    argv: Sequence[str]
    env: dict[str, str] = field(default_factory=dict)
    ready_url: str | None = None


class Supervisor:
    """Runs services as subprocesses; one exiting (or a signal) stops them all."""

    def __init__(self, services: Sequence[Service], *, out: IO[str] = sys.stdout, grace: float = 5.0) -> None:
        self.services = list(services)
        self.out = out
        self.grace = grace
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self._pumps: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        width = max((len(s.name) for s in self.services), default=4)
        colour = sys.stdout.isatty() if out is sys.stdout else False
        self._prefix = {
            s.name: (f"{_COLOURS[i % len(_COLOURS)]}{s.name:<{width}} |{_RESET} " if colour else f"{s.name:<{width}} | ")
            for i, s in enumerate(self.services)
        }

    def _pump(self, name: str, stream: IO[str]) -> None:
        for line in stream:
            if any(noise in line for noise in _NOISE):
                continue
            with self._lock:
                self.out.write(self._prefix[name] + line)
                self.out.flush()

    def say(self, text: str) -> None:
        with self._lock:
            self.out.write(text if text.endswith("\n") else text + "\n")
            self.out.flush()

    def start(self) -> None:
        for s in self.services:
            env = {**os.environ, **s.env, "PYTHONUNBUFFERED": "1"}
            proc = subprocess.Popen(  # noqa: S603 - our own argv
                list(s.argv),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                start_new_session=True,
            )
            self.procs[s.name] = proc
            pump = threading.Thread(target=self._pump, args=(s.name, proc.stdout), daemon=True)
            pump.start()
            self._pumps.append(pump)

    def wait_ready(self, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        for s in self.services:
            if not s.ready_url:
                continue
            while True:
                if self.procs[s.name].poll() is not None:
                    return False
                try:
                    if requests.get(s.ready_url, timeout=1).status_code < 500:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.2)
        return True

    def wait(self) -> int:
        """Block until a service exits or :meth:`stop` is called; return the exit code."""
        while not self._stopping.is_set():
            for name, proc in self.procs.items():
                code = proc.poll()
                if code is not None:
                    self.say(f"{name} exited with status {code}; stopping the others")
                    self.stop()
                    return code or 1
            self._stopping.wait(0.3)
        return 0

    def stop(self) -> None:
        self._stopping.set()
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for pump in self._pumps:  # the last lines a service wrote before exiting
            pump.join(timeout=2)


def _cli(name: str) -> list[str]:
    script = Path(sys.executable).with_name(name)
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", f"from {name}.cli import main; main()"]


def _home() -> Path:
    return Path(os.environ.get("YIWANG_HOME") or "instance").resolve()


def load_demo(home: Path) -> dict[str, Any]:
    path = home / "demo-clients.json"
    if not path.exists():
        subprocess.run([*_cli("idp"), "init", "--demo"], check=True)  # noqa: S603
    return dict(json.loads(path.read_text()))


COUNTER_VERIFIER_USCC = "111101050000000017"
"""The demo public security bureau (certstore init --demo): its signer key signs the counter page's requests."""


def certstore_env(demo: dict[str, Any]) -> dict[str, str]:
    """certstore's environment: its client at the idp (wallet sign-in, introspection) and the issuer."""
    env = {"YIWANG_ISSUER": demo.get("issuer") or f"http://127.0.0.1:{IDP_PORT}"}
    if demo.get("certstore"):  # the verifier's counter page (/vp/counter) asks in the public security bureau's name
        env["YIWANG_CERTSTORE_VP_COUNTER_AGENCY"] = COUNTER_VERIFIER_USCC
    client = demo.get("certstore") or {}
    if client.get("client_id") and client.get("client_secret"):
        env["YIWANG_CERTSTORE_CLIENT_ID"] = client["client_id"]
        env["YIWANG_CERTSTORE_CLIENT_SECRET"] = client["client_secret"]
    return env


def curl_example(demo: dict[str, Any], demo_path: Path, *, agency: str = "demo-psb") -> list[str]:
    """Shell lines an agency would run: a client-credentials token, then one certificate issued.

    The secret is read from the demo file rather than printed.
    """
    issuer = demo.get("issuer") or f"http://127.0.0.1:{IDP_PORT}"
    if agency not in (demo.get("agencies") or {}):
        return []
    body = (
        '{"type": "JZZM", "holder_code": "11010519491231002X", "holder_name": "张三", '
        '"fields": {"address": "北京市朝阳区建国门外大街1号院3号楼1502室", '
        '"residence_since": "2019-03-01", "purpose": "就业"}}'
    )
    return [
        f"SECRET=$(jq -r '.agencies[\"{agency}\"].client_secret' {demo_path})",
        f"TOKEN=$(curl -s -u {agency}:$SECRET -d grant_type=client_credentials "
        f"-d scope=certs:issue {issuer}/token | jq -r .access_token)",
        f"curl -s -X POST http://127.0.0.1:{CERTSTORE_PORT}/api/v1/certificates "
        '-H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" '
        f"-d '{body}' | jq .",
    ]


def counter_lines(demo: dict[str, Any], demo_path: Path) -> list[str]:
    """The counter channel (docs/counter-guide.md, "Try it with the demo"): the clerk's sign-in and its second factor.

    The password is printed as the citizen's is; the TOTP secret is in its otpauth URI
    (scan it, or paste it into an authenticator app), and a shell line prints the current code.
    """
    staff, counter = demo.get("staff") or {}, demo.get("counter") or {}
    if not staff.get("password") or not counter.get("client_id"):
        return []
    code = (f"{Path(sys.executable)} -c \"import json, pyotp; "
            f"print(pyotp.TOTP(json.load(open('{demo_path}'))['staff']['totp_secret']).now())\"")
    return [
        f"Counter (CIBA, docs/counter-guide.md \"Try it with the demo\"): client {counter['client_id']}; "
        f"clerk {staff['name']} at {staff['office']}",
        f"  staff sign-in: username {staff['username']}, password {staff['password']}, and the TOTP code of",
        f"  {staff['totp_uri']}",
        f"  current code: {code}",
    ]


def _certstore_available() -> bool:
    return importlib.util.find_spec("certstore.cli.serve") is not None


def seed_certificates(demo: dict[str, Any]) -> int:
    """``certstore init --demo --with-certificates``: the demo citizen's wallet is not empty.

    Issued through certstore's own service layer (its CLI), idempotently: a
    second start issues nothing new. Returns the command's exit status.
    """
    # Only what it issued and real errors: its library notes are not the demo user's business.
    env = {**os.environ, **certstore_env(demo), "YIWANG_LOG_LEVEL": "error", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(  # noqa: S603 - our own argv
        [*_cli("certstore"), "init", "--demo", "--with-certificates"], env=env, check=False
    ).returncode


def tsa_service() -> Service:
    """``certstore tsa serve``: the embedded default's YIWANG_CERTSTORE_TSA_URL (127.0.0.1:5180)."""
    return Service("tsa", [*_cli("certstore"), "tsa", "serve", "--port", str(TSA_PORT)],
                   ready_url=f"http://127.0.0.1:{TSA_PORT}/healthz")


def demo_services(demo: dict[str, Any], *, with_certstore: bool = True) -> list[Service]:
    issuer = demo.get("issuer") or f"http://127.0.0.1:{IDP_PORT}"
    services = [
        Service("idp", [*_cli("idp"), "serve", "--port", str(IDP_PORT)], ready_url=f"{issuer}/healthz"),
    ]
    with_cs = with_certstore and _certstore_available()
    if with_cs:
        services.append(
            Service(
                "certstore",
                [*_cli("certstore"), "serve", "--port", str(CERTSTORE_PORT)],
                env=certstore_env(demo),
                ready_url=f"http://127.0.0.1:{CERTSTORE_PORT}/",
            )
        )
    for letter, client in zip("AB", sorted(demo["clients"].values(), key=lambda c: c["port"]), strict=False):
        services.append(
            Service(
                f"portal-{letter.lower()}",
                [
                    sys.executable, "-m", "demo.portal", "--name", letter, "--port", str(client["port"]),
                    "--issuer", issuer, f"--client-id={client['client_id']}",
                    # portal B shows consented sharing of certificates (certs:read)
                    *(["--certstore", f"http://127.0.0.1:{CERTSTORE_PORT}"] if letter == "B" and with_cs else []),
                ],
                env={"PORTAL_CLIENT_SECRET": client["client_secret"]},
                ready_url=f"http://127.0.0.1:{client['port']}/",
            )
        )
    return services


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the Yiwang demo: idp, certstore, two portals")
    parser.add_argument("--no-certstore", action="store_true", help="do not start the certificate store")
    args = parser.parse_args(argv)
    home = _home()
    demo = load_demo(home)
    # The local RFC 3161 TSA first: issued PDFs are PAdES B-LTA, the seeded ones included (issue 15 §3).
    tsa = Supervisor([tsa_service()]) if not args.no_certstore and _certstore_available() else None
    if tsa is not None:
        tsa.start()
        if not tsa.wait_ready():
            tsa.stop()
            print("certstore tsa serve did not start; see above", file=sys.stderr)
            return 1
    if tsa is not None and seed_certificates(demo) != 0:
        tsa.stop()
        print("certstore init --demo --with-certificates failed; see above", file=sys.stderr)
        return 1
    sup = Supervisor(demo_services(demo, with_certstore=not args.no_certstore))
    signal.signal(signal.SIGTERM, lambda *_: sup.stop())
    with_certstore = any(s.name == "certstore" for s in sup.services)
    sup.start()
    if tsa is not None:  # supervised with the others from here on: one exiting stops all
        sup.procs.update(tsa.procs)
        sup._pumps += tsa._pumps
    try:
        if sup.wait_ready():
            citizen = demo["citizen"]
            ports = sorted(c["port"] for c in demo["clients"].values())
            sup.say(
                "\n".join(
                    [
                        "",
                        "Yiwang demo is running:",
                        f"  idp        http://127.0.0.1:{IDP_PORT}/account",
                        *[f"  portal {letter}   http://127.0.0.1:{p}/" for letter, p in zip("AB", ports, strict=False)],
                        f"  kiosk      http://127.0.0.1:{ports[-1]}/kiosk (device grant: approve on the idp)",
                        *(
                            [
                                f"  wallet     http://127.0.0.1:{CERTSTORE_PORT}/wallet (the citizen's certificates)",
                                f"  verify     http://127.0.0.1:{CERTSTORE_PORT}/verify (paste a certificate's QR text)",
                                f"  counter    http://127.0.0.1:{CERTSTORE_PORT}/vp/counter (a verifier asks the wallet, OpenID4VP)",
                            ]
                            if with_certstore
                            else []
                        ),
                        *(
                            [f"  sharing    http://127.0.0.1:{ports[-1]}/certificates (portal B reads the "
                             "wallet with the citizen's consent, certs:read)"]
                            if with_certstore
                            else []
                        ),
                        f"  sign in with ID number {citizen['id_number']} and password {citizen['password']}",
                        "  (sign in at portal A, open portal B: no login form; sign out at either: both end)",
                        *(
                            ["", "Issue a certificate as the demo public security bureau (docs/agency-guide.md §5):",
                             *[f"  {line}" for line in curl_example(demo, home / "demo-clients.json")]]
                            if with_certstore and demo.get("agencies")
                            else []
                        ),
                        "",
                        *counter_lines(demo, home / "demo-clients.json"),
                        "  Ctrl-C stops everything.",
                        "",
                    ]
                )
            )
        return sup.wait()
    except KeyboardInterrupt:
        sup.say("stopping")
        sup.stop()
        return 0


if __name__ == "__main__":
    sys.exit(main())
