"""``python -m benchmarks [--only a,b] [--quick]``: every figure the issues ask for.

Sections run one after the other (never in parallel: each pins its server to
core 0 and its load to core 1), and a section whose parts are missing says so
instead of failing the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback

from . import summary

SECTIONS = {
    "idp": "benchmarks.oidc",
    "dpop": "benchmarks.oidc",
    "logout": "benchmarks.logout",
    "signing": "benchmarks.signing",
    "certstore": "benchmarks.certstore",
    "batch": "benchmarks.batch",
    "statuslist": "benchmarks.statuslist",
    "vp": "benchmarks.vp",  # issue 15 §2: presentations verified per second (PostgreSQL when reachable)
    "vci": "benchmarks.vci",
    "ciba": "benchmarks.ciba",
    "passkeys": "benchmarks.passkeys",  # issue 13 §2: passkey sign-ins per second against password sign-ins
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--only", help="comma-separated sections: " + ", ".join(SECTIONS))
    parser.add_argument(
        "--quick", action="store_true", help="one round of short idp runs; a batch of 1,000 instead of 10,000"
    )
    args = parser.parse_args(argv)
    wanted = args.only.split(",") if args.only else list(SECTIONS)
    failed = 0
    for name in wanted:
        if name not in SECTIONS:
            print(f"unknown section {name!r}", file=sys.stderr)
            return 2
        print(f"\n=== {name} ===", flush=True)
        start = time.monotonic()
        try:
            module = importlib.import_module(SECTIONS[name])
        except ModuleNotFoundError as e:
            print(f"skipped: {e}")
            continue
        result = None
        try:
            if name == "idp":
                result = module.run(rounds=1 if args.quick else 3, duration=4 if args.quick else 8)
            elif name == "dpop":
                # The DPoP scenarios beside their bearer twins, the reference with DPoP on (issue 14).
                module.run(rounds=1 if args.quick else 3, duration=4 if args.quick else 8, dpop=True)
            elif name == "certstore":
                # Production's database, not the embedded SQLite file.
                from ._proc import pg_schema

                with pg_schema("benchcs") as url:
                    result = module.main(["--database-url", url])
            elif name == "vci":
                # issue 15 §1: OpenID4VCI against the API, on production's database
                from ._proc import pg_schema

                with pg_schema("benchvci") as url:
                    result = module.main(["--database-url", url])
            elif name == "batch" and args.quick:
                module.main(["--count", "1000"])
            elif hasattr(module, "main"):
                result = module.main([]) if _takes_argv(module.main) else module.main()
            else:
                module.run()
        except Exception:
            failed += 1
            traceback.print_exc()
        summary.collect(name, result)  # issue 16: the closing table
        print(f"({name}: {time.monotonic() - start:.0f} s)", flush=True)
    summary.print_table()
    return 1 if failed else 0


def _takes_argv(fn: object) -> bool:
    import inspect

    try:
        return len(inspect.signature(fn).parameters) > 0  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


if __name__ == "__main__":
    sys.exit(main())
