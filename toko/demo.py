"""The seed's story, played against the running services over HTTP.

dwi logs in once and buys 10 times; will logs in once and buys 50 times; eko's login fails, so every
purchase he attempts is refused. Each customer's one token serves every purchase.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import requests

DEMO_ADMIN = ("admin", "admin-password-123")
STORY = [("dwi", "dwi-password-123", 10), ("will", "will-password-123", 50), ("eko", "wrong-password", 3)]


@dataclass
class Outcome:
    username: str
    logged_in: bool
    logins: int = 0
    bought: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)


class Demo:
    def __init__(
        self,
        user_url: str,
        item_url: str,
        transaction_url: str,
        echo: Callable[[str], None] = print,
        timeout: float = 10,
    ):
        self.user_url, self.item_url, self.transaction_url = user_url, item_url, transaction_url
        self.echo, self.timeout = echo, timeout

    def ensure_customer(self, username: str, password: str) -> None:
        """Register a story customer if missing (409: already there, as after `toko seed-demo`)."""
        response = requests.post(
            f"{self.user_url}/v1/users",
            json={"username": username, "email": f"{username}@toko.local", "password": password},
            timeout=self.timeout,
        )
        if response.status_code not in (201, 409):
            raise RuntimeError(f"cannot register {username}: {response.status_code} {response.text[:200]}")

    def pick_item(self, below: int, needed: int) -> dict:
        items = requests.get(
            f"{self.item_url}/v1/items", params={"per_page": 100}, timeout=self.timeout
        ).json()["data"]
        for item in items:
            if item["price"] < below and item["stock"] >= needed:
                return item
        raise RuntimeError(f"no item cheaper than {below} with {needed} in stock: run `toko seed-demo`")

    def play(self, item: dict, story=STORY) -> list[Outcome]:
        outcomes = []
        for username, password, attempts in story:
            http = requests.Session()
            login = http.post(
                f"{self.user_url}/v1/sessions",
                json={"username": username, "password": password},
                timeout=self.timeout,
            )
            outcome = Outcome(username, login.status_code == 201, logins=1)
            token = login.json()["data"]["token"] if outcome.logged_in else None
            self.echo(f"{username}: login {'ok' if token else f'failed ({login.status_code})'}")
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            for n in range(1, attempts + 1):
                bought = http.post(
                    f"{self.transaction_url}/v1/transactions",
                    headers=headers,
                    timeout=self.timeout,
                    json={"lines": [{"item_id": item["id"], "quantity": 1}]},
                )
                if bought.status_code == 201:
                    outcome.bought.append(bought.json()["data"]["id"])
                    self.echo(
                        f"  transaction {n}/{attempts}: paid #{bought.json()['data']['id']} "
                        f"({bought.json()['data']['total']} {item['name']})"
                    )
                else:
                    outcome.refused.append(bought.status_code)
                    self.echo(
                        f"  transaction {n}/{attempts}: refused "
                        f"({bought.status_code} {bought.json()['error']['code']})"
                    )
            outcomes.append(outcome)
        for o in outcomes:
            login = f"{o.logins} login" if o.logged_in else f"{o.logins} failed login"
            self.echo(f"{o.username}: {login}, {len(o.bought)} bought, {len(o.refused)} refused")
        return outcomes
