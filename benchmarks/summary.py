"""The closing table of ``make bench``: every figure of issue 16's table as a ratio against its reference.

Sections hand their results to :func:`collect` (``benchmarks.__main__`` does it
after each one); :func:`print_table` prints what was measured in this run, row
by row in the issue's order, and says ``not measured`` for a row whose section
did not run or was skipped. Each ratio comes from one section's own run, its
two sides measured side by side (compare.sh's alternating rounds for the idp,
alternating slices for signing and certstore), never from two runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ROWS", "collect", "figures", "print_table", "reset", "idp_figures"]


@dataclass(frozen=True)
class Row:
    key: str
    path: str
    reference: str
    goal: str
    unit: str = "x"
    """``x``: a ratio, higher is better; ``ms``: a time, lower is better."""


ROWS = (
    Row("refresh", "refresh grant", "oidc-provider, same core", ">= 0.7x"),
    Row("sso_login", "SSO sign-in round trip (second portal, no password)", "oidc-provider, same core", ">= 0.7x"),
    Row("introspection", "introspection", "oidc-provider, same core", ">= 0.8x"),
    Row("userinfo", "userinfo", "oidc-provider, same core", ">= 0.8x"),
    Row("discovery", "discovery", "oidc-provider, same core", ">= 0.9x"),
    Row("password", "password sign-ins", "1 / Argon2id hash time on the server's core", ">= 0.75"),
    Row("certificate", "certificate issued via the API", "bare pyHanko B-B sign, same page", ">= 0.9x"),
    Row("qr_verify", "QR verification", "raw P-256 verify", ">= 0.7x"),
    Row("logout_1", "back-channel logout to 50 portals, 1 worker", "time until all 50 delivered", "< 300 ms", "ms"),
    Row("logout_2", "back-channel logout to 50 portals, 2 workers", "time until all 50 delivered", "-", "ms"),
)

_FIGURES: dict[str, tuple[float, str]] = {}


def reset() -> None:
    _FIGURES.clear()


def figures() -> dict[str, tuple[float, str]]:
    """``key → (value, how it was measured)`` of this run."""
    return dict(_FIGURES)


def idp_figures(results: Mapping[str, Any]) -> dict[str, tuple[float, str]]:
    """The idp rows from :func:`benchmarks.oidc.run`'s results (compare.sh's summary.json)."""
    out: dict[str, tuple[float, str]] = {}
    summary = results.get("summary_json")
    rows = json.loads(Path(summary).read_text()) if summary and Path(summary).is_file() else []
    hash_s = results.get("argon2id_hash_ms")
    for r in rows:
        name = r.get("scenario")
        ratio = r.get("ratio_b_over_a")
        if not isinstance(ratio, int | float):
            continue
        rounds = " ".join(f"{x:.2f}" for x in r.get("round_ratios") or [])
        detail = f"{r['b_ops_per_s']:.0f}/s vs {r['a_ops_per_s']:.0f}/s, rounds {rounds}"
        if name in ("refresh", "sso_login", "introspection", "userinfo", "discovery"):
            out[name] = (float(ratio), detail)
        elif name == "login" and isinstance(hash_s, int | float):
            logins = float(r["b_ops_per_s"])
            out["password"] = (logins * hash_s / 1000, f"{logins:.1f} logins/s x {hash_s:.1f} ms per hash")
    return out


def _certstore(r: Mapping[str, Any]) -> dict[str, tuple[float, str]]:
    return {"certificate": (float(r["issue_ratio"]), f"{r['api_issue_per_s']:.1f}/s vs {r['bare_pyhanko_bb_per_s']:.1f}/s")}


def _signing(r: Mapping[str, Any]) -> dict[str, tuple[float, str]]:
    qr, raw = float(r["qr_verify_per_s"]), float(r["p256_verify_per_s"])
    return {"qr_verify": (qr / raw, f"{qr:.0f}/s vs {raw:.0f}/s, alternating slices")}


def _logout(results: Any) -> dict[str, tuple[float, str]]:
    out: dict[str, tuple[float, str]] = {}
    for r in results or []:
        setup = str(r.get("setup", ""))
        key = "logout_1" if setup.endswith("1") else "logout_2" if setup.endswith("2") else None
        if key:
            out[key] = (float(r["seconds"]) * 1000, f"{r['deliveries_per_s']:.0f} deliveries/s")
    return out


_COLLECTORS: dict[str, Callable[[Any], dict[str, tuple[float, str]]]] = {
    "idp": idp_figures, "certstore": _certstore, "signing": _signing, "logout": _logout,
}


def collect(section: str, result: Any) -> None:
    """Take a section's returned results (ignored for sections with no row in the table)."""
    collector = _COLLECTORS.get(section)
    if collector is None or result is None:
        return
    try:
        _FIGURES.update(collector(result))
    except (KeyError, TypeError, ValueError, OSError) as e:  # a section's output changed: say so, go on
        print(f"(summary: could not read the {section} section's figures: {type(e).__name__}: {e})")


def _met(row: Row, value: float) -> str:
    if row.goal == "-":
        return ""  # a figure with no bar of its own (the bar is 1 worker's)
    op, bound = row.goal.split()[0], float(row.goal.split()[1].rstrip("x"))
    ok = value >= bound if op == ">=" else value < bound
    return "met" if ok else "NOT met"


def print_table() -> None:
    print("\n=== summary: issue 16's table, this run ===")
    print("Ratios are this run's, both sides measured side by side; on the shared 2-core VM count ±5 %"
          " (±10 % when other% is high) as noise.")
    print(f"{'path':<52} {'figure':>9}  {'goal':<9} {'':<8} reference; measured as")
    for row in ROWS:
        got = _FIGURES.get(row.key)
        if got is None:
            print(f"{row.path:<52} {'-':>9}  {row.goal:<9} {'':<8} not measured in this run ({row.reference})")
            continue
        value, detail = got
        shown = f"{value:.0f} ms" if row.unit == "ms" else f"{value:.2f}" + ("" if row.key == "password" else "x")
        print(f"{row.path:<52} {shown:>9}  {row.goal:<9} {_met(row, value):<8} {row.reference}; {detail}")
