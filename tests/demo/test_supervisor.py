"""demo.serve's supervisor: output prefixed per service; one exiting stops the others."""

from __future__ import annotations

import io
import sys

from demo.serve import Service, Supervisor


def test_one_service_exiting_stops_the_others():
    out = io.StringIO()
    sup = Supervisor(
        [
            Service("sleeper", [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]),
            Service("quitter", [sys.executable, "-c", "print('bye'); raise SystemExit(3)"]),
        ],
        out=out,
        grace=5,
    )
    sup.start()
    assert sup.wait() == 3
    assert all(p.poll() is not None for p in sup.procs.values())
    text = out.getvalue()
    assert "quitter | bye" in text
    assert "quitter exited with status 3" in text


def test_stop_terminates_everything():
    sup = Supervisor([Service("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])], out=io.StringIO())
    sup.start()
    sup.stop()
    assert sup.procs["sleeper"].poll() is not None
    assert sup.wait() == 0
