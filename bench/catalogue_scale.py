"""Benchmark: what the shopper's pages cost as the catalogue grows.

    python bench/catalogue_scale.py [--shops 1000 10000] [--repeat 15]

For each size, stores that many shops in each of two programmes (PAYBACK and
Miles & More, pairwise one merchant by a shared domain) straight through
``store_offers`` into a scratch SQLite database, builds the kept ranking once
(``/``), then prints the median server time through the test client of ``/``,
a middle page, a search, a search with a typo and ``/shop/<id>``.

Not yet all a scale bench should be (catalogues through the real scraper
from a loopback source, PostgreSQL, store times): a first step that puts the
page costs side by side.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402

from app import create_app  # noqa: E402
from models import BASE, Shop, db  # noqa: E402
from scrapers.rates import parse_rate  # noqa: E402
from scrapers.store import Offer, OfferRate, store_offers  # noqa: E402
from views.shop_ranking import PAGE_SIZE  # noqa: E402


def _median_ms(client, path: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}")
    return statistics.median(times) * 1000


def measure(shops: int, repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-catalogue-") as scratch:
        app = create_app({"DATABASE_URL": f"sqlite:///{scratch}/catalogue.sqlite", "TESTING": True,
                          "SECRET_KEY": "bench-only-secret-key-0123456789abcdef", "JOBS_AUTOSTART": False,
                          "WEBHOOK_DELIVERY_AUTOSTART": False}, instance_path=scratch)
        with app.app_context():
            for programme, unit in (("payback", "°P"), ("miles_and_more", "Meilen")):
                store_offers(programme, [
                    Offer(external_id=f"{programme}-{n}", name=f"Shop {n}", domains=[f"shop{n}.example"],
                          rates=[OfferRate(BASE, parse_rate(f"{n % 5 + 1} {unit} pro 1 €"))])
                    for n in range(shops)], complete=True)
            shop_id = db.session.scalar(sa.select(Shop.id).where(Shop.external_id == f"payback-{shops // 2}"))
        client = app.test_client()
        started = time.perf_counter()
        client.get("/")  # builds the ranking this process keeps until the data changes
        ranking_ms = (time.perf_counter() - started) * 1000
        middle = max(1, shops // PAGE_SIZE // 2)
        figures = {"ranking built": ranking_ms}
        for label, path in (("/", "/"), ("middle page", f"/?page={middle}"), ("search", f"/?q=shop {shops // 3}"),
                            ("search, typo", "/?q=shopp"), ("/shop/<id>", f"/shop/{shop_id}")):
            figures[label] = _median_ms(client, path, repeat)
        with app.app_context():
            app.extensions["job_queue"].store.engine.dispose()
            db.engine.dispose()
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shops", type=int, nargs="+", default=[1000, 10000], help="shops per programme")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    rows = {shops: measure(shops, args.repeat) for shops in args.shops}
    labels = list(next(iter(rows.values())))
    print(f"median of {args.repeat} requests, ms (two programmes of N shops each, SQLite, test client)\n")
    print(f"{'N':>8}" + "".join(f"{label:>16}" for label in labels))
    for shops, figures in rows.items():
        print(f"{shops:>8}" + "".join(f"{figures[label]:>16.1f}" for label in labels))


if __name__ == "__main__":
    main()
