"""The demo's two non-API pages: ``/docs`` (and ``/redoc``) work offline, and ``/metrics`` answers a scrape
directly without the scrape itself becoming a request in the metrics it serves."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import httpx
import pytest
import pytest_asyncio
from tests.demo.conftest import Citizen

from pgpulse.demo.app import create_app
from pgpulse.settings import Settings

# What each kind of asset must be served as for a browser to use it (script, stylesheet, the favicon).
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class AssetLinks(HTMLParser):
    """Every URL the page makes the browser fetch: ``<script src>`` and ``<link href>``."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}),
        ("/redoc", {"redoc.standalone.js", "favicon.png"}),
    ],
)
async def test_api_docs_load_every_asset_from_the_app_itself(citizen: Citizen, page: str, expected: set[str]) -> None:
    response = await citizen.client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "cdn.jsdelivr.net" not in response.text and "unpkg.com" not in response.text
    assert "fonts.googleapis.com" not in response.text
    links = AssetLinks()
    links.feed(response.text)
    assert {url.rsplit("/", 1)[-1] for url in links.urls} == expected
    for url in links.urls:
        assert url.startswith("/") and not url.startswith("//"), url  # same origin, no scheme or host
        asset = await citizen.client.get(url)
        assert asset.status_code == 200, url
        suffix = url[url.rindex(".") :]
        assert asset.headers["content-type"].split(";")[0] == ASSET_TYPES[suffix], url
        assert len(asset.content) > 1_000, url  # the real file, not an error page


@pytest_asyncio.fixture(loop_scope="session")
async def scraped(citizen: Citizen) -> AsyncIterator[httpx.AsyncClient]:
    """CitizenApp as ``pgpulse demo`` serves it: profiler on, metrics route on."""
    app = create_app(citizen.url, Settings(metrics_route=True))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://citizen") as client:
            yield client


def requests_counted(exposition: str) -> float:
    """All requests the profiler recorded, over every route and method."""
    counts = re.findall(r"^pgpulse_db_queries_per_request_count\{[^}]*\} (\S+)$", exposition, flags=re.MULTILINE)
    return sum(map(float, counts))


async def test_metrics_answers_200_at_its_own_path_without_a_redirect(scraped: httpx.AsyncClient) -> None:
    for path in ("/metrics", "/metrics/"):
        response = await scraped.get(path, follow_redirects=False)
        assert response.status_code == 200, path
        assert "location" not in response.headers
        assert response.headers["content-type"].startswith("text/plain")
        assert "# TYPE pgpulse_db_queries_per_request histogram" in response.text


async def test_scrapes_are_not_recorded_as_requests(citizen: Citizen, scraped: httpx.AsyncClient) -> None:
    assert (await scraped.get(f"/users/{citizen.seeded.showcase_user_id}")).status_code == 200
    first = (await scraped.get("/metrics")).text
    second = (await scraped.get("/metrics")).text
    assert requests_counted(first) >= 1  # the API request above is there
    assert requests_counted(second) == requests_counted(first)  # the first scrape is not
    assert 'route="/metrics' not in second
