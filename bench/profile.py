"""A profile of authorize, in process (Flask test client), for docs/performance.md.

pyinstrument samples the whole request (limiter, token check, schema, reads, engine, writes,
JSON); the text tree is written next to the JSON results. Skipped, with a message, when
pyinstrument is not installed.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from .datagen import REQUESTS, SYSTEM, subject_value


def authorize_profile(
    app: Any, *, client_id: str, client_secret: str, subjects: int, requests: int, out: Path
) -> dict[str, Any]:
    try:
        from pyinstrument import Profiler
    except ImportError:
        return {"skipped": "pyinstrument is not installed (pip install pyinstrument)"}
    from .serve import warm

    warm(app)  # every community compiled, as in the served workers: profile decisions, not start-up
    client = app.test_client()
    answer = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "authorize"},
        auth=(client_id, client_secret),
    )
    headers = {"Authorization": f"Bearer {answer.get_json()['access_token']}"}
    rng = random.Random(3)

    def one() -> None:
        purpose, categories = rng.choice(REQUESTS)
        response = client.post(
            "/v1/authorize",
            headers=headers,
            json={
                "subject": {"system": SYSTEM, "value": subject_value(rng.randrange(subjects))},
                "purpose": purpose,
                "data_categories": categories,
            },
        )
        assert response.status_code == 200, response.get_json()

    for _ in range(50):
        one()
    profiler = Profiler(interval=0.0005)
    started = time.perf_counter()
    profiler.start()
    for _ in range(requests):
        one()
    profiler.stop()
    elapsed = time.perf_counter() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    return {
        "file": str(out),
        "requests": requests,
        "ms_per_request_profiled": round(elapsed / requests * 1000, 3),
    }
