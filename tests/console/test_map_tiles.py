"""The map's base tiles come from the configured tile server (a customs intranet one; here
a small HTTP server on loopback) and nowhere else: the tile layer uses the configured URL
template, the browser fetches exactly those tiles, the page's CSP allows that origin."""

from __future__ import annotations

import re
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit
from urllib.request import urlopen

import pytest
from playwright.sync_api import Browser, expect

from server.console.config import ConsoleSettings, TileSource
from tests.console.conftest import ACCOUNTS, ConsoleServer, console_tab, running_console_server


def one_pixel_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xe0\xe8\xf0")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


class TileServer:
    """Serves the same small PNG for every path and remembers the paths asked for."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        png = one_pixel_png()
        seen = self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(png)))
                self.end_headers()
                self.wfile.write(png)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def tiles() -> Iterator[TileServer]:
    server = TileServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def tiled_server(
    tmp_path_factory: pytest.TempPathFactory, tiles: TileServer
) -> Iterator[ConsoleServer]:
    source = TileSource(
        url=f"http://{tiles.origin}/osm/{{z}}/{{x}}/{{y}}.png",
        attribution="内网瓦片 · intranet tiles",
        max_zoom=17,
    )
    settings = ConsoleSettings(tiles=source)
    with running_console_server(tmp_path_factory.mktemp("tiled"), settings) as server:
        yield server


TILE = re.compile(r"^/osm/(\d+)/(\d+)/(\d+)\.png$")


def test_the_tile_layer_uses_the_configured_url_and_nothing_else(
    browser: Browser, tiled_server: ConsoleServer, tiles: TileServer
):
    with urlopen(tiled_server.base_url + "/login") as res:
        policy = res.headers["Content-Security-Policy"]
    assert f"img-src 'self' data: blob: http://{tiles.origin};" in policy

    with console_tab(browser, tiled_server.base_url, allowed={tiles.origin}) as tab:
        tab.login(ACCOUNTS["officer"])
        page = tab.page
        expect(page.locator("#map[data-ready='1']")).to_be_attached()
        expect(page.locator("#map")).to_have_attribute(
            "data-tiles", f"http://{tiles.origin}/osm/{{z}}/{{x}}/{{y}}.png"
        )
        expect(page.locator("#map")).not_to_have_class(re.compile(r"\bplain-background\b"))
        images = page.locator("img.leaflet-tile-loaded")
        expect(images.first).to_be_attached()
        zoom = int(page.locator("#map").get_attribute("data-zoom") or -1)
        sources = images.evaluate_all("imgs => imgs.map(i => i.src)")
        assert sources
        for src in sources:
            parts = urlsplit(src)
            found = TILE.match(parts.path)
            assert parts.netloc == tiles.origin and found, src
            z, x, y = map(int, found.groups())
            assert z == zoom and 0 <= x < 2**z and 0 <= y < 2**z
        # The tile server was asked for exactly the tiles on the page (and no others).
        assert {urlsplit(s).path for s in sources} <= set(tiles.paths)
        assert all(TILE.match(p) for p in tiles.paths), tiles.paths
        # Every request the page made went to the console server or the tile server.
        others = {urlsplit(u).netloc for u in tab.requests if u.startswith("http")}
        assert others == {urlsplit(tiled_server.base_url).netloc, tiles.origin}
        expect(page.locator(".leaflet-control-attribution")).to_contain_text("内网瓦片")
        tab.screenshot("map-tiles")
