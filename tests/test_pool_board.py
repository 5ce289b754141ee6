"""The live pool board (公海看板) at /pool, driven in headless Chromium.

Reps sign in on their own boards, claim with one click, and see each other's
claims and releases arrive live; a board whose connection dropped catches up
on what it missed once it is back.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from meihua.models import Customer, Pool, User
from meihua.resolvers.customers import normalize_name
from meihua.schema.relay import to_global_id
from tests.conftest import PASSWORD

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT = 5  # seconds a board may take to show something it was not told about live
LIVE = 1  # seconds another board may take to show a claim

CLAIM = "mutation($id: ID!) { claimCustomer(id: $id) { id } }"
CREATE = "mutation($name: String!) { createCustomer(input: {name: $name}) { id } }"
RELEASE = """
mutation($ids: [ID!]!, $reason: String) { releaseCustomers(ids: $ids, reason: $reason) { id } }
"""


def gid(row) -> str:
    return to_global_id(type(row).__name__, row.id)


# --- the browser ---------------------------------------------------------------------

needs_browser = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None or importlib.util.find_spec("selenium") is None,
    reason="the pool board tests need chromium, chromedriver and selenium "
    "(Debian: apt-get install chromium chromium-driver; pip install -e '.[test]')",
)


class Board:
    """One rep's pool board in its own headless Chromium.

    Selenium blocks; every call runs in a thread so the server, which shares
    the test's event loop, keeps answering the browser meanwhile.
    """

    def __init__(self, url: str) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        # --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start.
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
            options.add_argument(argument)
        options.add_argument("--window-size=1280,900")
        options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        self.url = url

    async def _run(self, function, *args):
        return await asyncio.to_thread(function, *args)

    async def until(self, condition, timeout: float = WAIT, message: str = "") -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        wait = WebDriverWait(self.driver, timeout, poll_frequency=0.05)
        await self._run(wait.until, condition, message)

    def _find(self, css: str):
        return self.driver.find_elements("css selector", css)

    def _text(self, css: str) -> list[str]:
        return [node.text for node in self._find(css)]

    async def sign_in(self, username: str, password: str) -> None:
        def fill() -> None:
            self.driver.get(self.url)
            self.driver.find_element("id", "username").send_keys(username)
            self.driver.find_element("id", "password").send_keys(password)
            self.driver.find_element("id", "sign-in-button").click()

        await self._run(fill)
        await self.until(lambda _: self.connection() == "live", message="board never went live")

    def connection(self) -> str:
        return self.driver.find_element("id", "connection").get_attribute("data-state")

    def _row(self, customer_id: str) -> str:
        return f'#rows tr[data-id="{customer_id}"]'

    async def shows(self, customer_id: str, timeout: float = WAIT) -> None:
        css = self._row(customer_id)
        await self.until(lambda _: self._find(css), timeout, f"no row {customer_id}")

    async def lacks(self, customer_id: str, timeout: float = WAIT) -> None:
        css = self._row(customer_id)
        await self.until(lambda _: not self._find(css), timeout, f"row {customer_id} stays")

    async def rows(self) -> list[str]:
        return await self._run(self._text, "#rows td.name")

    async def claim(self, customer_id: str) -> None:
        css = f"{self._row(customer_id)} button.claim"
        await self._run(lambda: self.driver.find_element("css selector", css).click())

    async def toast_says(self, text: str) -> None:
        await self.until(
            lambda _: any(text in toast for toast in self._text(".toast")),
            message=f"no toast saying {text!r}",
        )

    async def feed_says(self, line: str, timeout: float = WAIT) -> None:
        await self.until(
            lambda _: line in self._text("#feed .text"), timeout, f"no feed line {line!r}"
        )

    async def script(self, source: str):
        return await self._run(self.driver.execute_script, source)

    async def click(self, element_id: str) -> None:
        await self._run(lambda: self.driver.find_element("id", element_id).click())

    async def visible(self, element_id: str) -> bool:
        return await self._run(lambda: self.driver.find_element("id", element_id).is_displayed())

    async def console_errors(self) -> list[str]:
        """What the browser complained about: failed loads, script errors, CSP violations."""
        entries = await self._run(self.driver.get_log, "browser")
        return [entry["message"] for entry in entries]

    async def close(self) -> None:
        await self._run(self.driver.quit)


# --- a network that can drop ---------------------------------------------------------


class Line:
    """One WebSocket through the cable; `cut` ends it as a dropped network would."""

    def __init__(self, receive, send) -> None:
        self._receive = receive
        self._send = send
        self._cut = asyncio.Event()

    async def receive(self):
        if not self._cut.is_set():
            message = asyncio.ensure_future(self._receive())
            cut = asyncio.ensure_future(self._cut.wait())
            done, pending = await asyncio.wait({message, cut}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if message in done:
                return message.result()
        return {"type": "websocket.disconnect", "code": 1006}

    async def send(self, message) -> None:
        if not self._cut.is_set():
            await self._send(message)

    async def cut(self) -> None:
        self._cut.set()
        await self._send({"type": "websocket.close", "code": 1012})


class Cable:
    """The app behind a switch: `down()` drops every WebSocket and refuses new
    ones until `up()`; plain HTTP always gets through."""

    def __init__(self, app) -> None:
        self.app = app
        self.state = app.state
        self.lines: set[Line] = set()
        self.connected = True

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
        elif not self.connected:
            await receive()
            await send({"type": "websocket.close", "code": 1013})
        else:
            line = Line(receive, send)
            self.lines.add(line)
            try:
                await self.app(scope, line.receive, line.send)
            finally:
                self.lines.discard(line)

    async def down(self) -> None:
        self.connected = False
        for line in list(self.lines):
            await line.cut()

    def up(self) -> None:
        self.connected = True


@pytest.fixture
def app(app):
    """The conftest app behind a cable (the server, `http` and `gql` all use it)."""
    return Cable(app)


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture
async def boards(ws_url):
    """`await boards(user)`: a board signed in as `user`; all are closed at the end."""
    parts = urlsplit(ws_url)
    url = f"http://{parts.netloc}/pool"
    opened: list[Board] = []

    async def open_for(user: User) -> Board:
        board = await asyncio.to_thread(Board, url)
        opened.append(board)
        await board.sign_in(user.username, PASSWORD)
        return board

    yield open_for
    await asyncio.gather(*(board.close() for board in opened))


@pytest.fixture
async def floor(org):
    """Alice, Bob and Carol, reps and so members of the company pool, which holds two customers."""
    rep = await org.default_role("Sales Rep")
    pool = await Pool.get(company_wide=True)
    admin = await org.admin()
    now = datetime.now(UTC)

    async def pooled(name: str, hours_ago: int, **fields) -> Customer:
        return await Customer.create(
            name=name,
            name_key=normalize_name(name),
            created_by_id=admin.id,
            pool_id=pool.id,
            pool_entered_at=now - timedelta(hours=hours_ago),
            **fields,
        )

    return {
        "pool": pool,
        "alice": await org.user("alice", roles=[rep], name="Alice"),
        "bob": await org.user("bob", roles=[rep], name="Bob"),
        "carol": await org.user("carol", roles=[rep], name="Carol"),
        "acme": await pooled("Acme Trading", 1, industry="Retail", region="Hangzhou", level="A"),
        "foo": await pooled("Foo Tools", 5, industry="Machinery", level="B"),
    }


async def released_by(gql, user: User, name: str, reason: str) -> str:
    created = await gql.ok(CREATE, {"name": name}, as_user=user)
    customer_id = created["createCustomer"]["id"]
    await gql.ok(RELEASE, {"ids": [customer_id], "reason": reason}, as_user=user)
    return customer_id


# --- the page itself -----------------------------------------------------------------


async def test_the_page_runs_only_what_this_server_sends(http):
    page = await http.get("/pool", headers={"Host": "crm.example.com:8443"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["x-content-type-options"] == "nosniff"
    directives = page.headers["content-security-policy"].split(";")
    policy = dict(directive.strip().split(" ", 1) for directive in directives)
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["connect-src"] == "'self' ws://crm.example.com:8443 wss://crm.example.com:8443"
    assert "https://" not in page.text and "http://" not in page.text

    script = await http.get("/static/pool.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["x-content-type-options"] == "nosniff"
    assert "innerHTML" not in script.text


async def test_a_forged_host_stays_out_of_the_policy(http):
    page = await http.get("/pool", headers={"Host": "evil; script-src *"})
    policy = page.headers["content-security-policy"]
    assert "evil" not in policy
    assert "connect-src 'self';" in policy


# --- boards in the browser -----------------------------------------------------------


@needs_browser
async def test_claims_and_releases_show_live_on_every_board(boards, floor, gql):
    acme, foo = gid(floor["acme"]), gid(floor["foo"])
    alice = await boards(floor["alice"])
    bob = await boards(floor["bob"])
    for board in (alice, bob):
        assert await board.rows() == ["Acme Trading", "Foo Tools"]  # newest in the pool first

    # Carol releases one of hers through the API: both boards show it at the top.
    bar = await released_by(gql, floor["carol"], "Bar Logistics", "moved abroad")
    for board in (alice, bob):
        await board.shows(bar)
        await board.feed_says("Carol released Bar Logistics: moved abroad")
        assert await board.rows() == ["Bar Logistics", "Acme Trading", "Foo Tools"]

    # Alice claims Acme with one click; Bob sees it go at once.
    await alice.claim(acme)
    await alice.toast_says("Acme Trading is yours now")
    await bob.lacks(acme, timeout=LIVE)
    await bob.feed_says("Alice claimed Acme Trading", timeout=LIVE)
    await alice.lacks(acme)
    assert (await Customer.get(id=floor["acme"].id)).owner_id == floor["alice"].id

    # Over the pool's cap, the board says what the server said and keeps the row.
    await Pool.filter(id=floor["pool"].id).update(max_owned=1)
    await alice.claim(foo)
    await alice.toast_says("the pool allows 1")
    await alice.shows(foo)
    assert (await Customer.get(id=floor["foo"].id)).owner_id is None
    # The page lives within its Content-Security-Policy: nothing blocked, nothing broken.
    for board in (alice, bob):
        assert await board.console_errors() == []


@needs_browser
async def test_a_board_that_lost_its_connection_catches_up(boards, floor, gql, app):
    foo = gid(floor["foo"])
    carol = floor["carol"]
    bob = await boards(floor["bob"])
    bar = await released_by(gql, carol, "Bar Logistics", "moved abroad")
    await bob.shows(bar)

    await app.down()
    await bob.until(lambda _: bob.connection() != "live", message="board never noticed")

    # Carol claims Foo while Bob's board cannot hear it: his click loses the race.
    await gql.ok(CLAIM, {"id": foo}, as_user=carol)
    await bob.claim(foo)
    await bob.toast_says("Someone was faster")
    await bob.lacks(foo)

    qux = await released_by(gql, carol, "Qux Foods", "no budget")
    app.up()
    await bob.script("window.dispatchEvent(new Event('online'))")
    await bob.until(lambda _: bob.connection() == "live", timeout=20, message="never back")

    # What happened while away arrives from the event log, not from a reload.
    await bob.shows(qux)
    await bob.feed_says("Carol claimed Foo Tools")
    await bob.feed_says("Carol released Qux Foods: no budget")

    await bob.click("sign-out")
    assert await bob.visible("sign-in")
    assert await bob.script("return sessionStorage.getItem('meihua.token')") is None
