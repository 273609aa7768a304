"""How an outgoing OTP message leaves toko: the Sender interface and its implementations."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import requests

from common.settings import Settings

log = logging.getLogger("toko.otp.delivery")

# A gateway that does not answer within this many seconds counts as a failed attempt (retried later).
GATEWAY_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class OutgoingMessage:
    """One message of the outbox, as a sender sees it."""

    id: int
    channel: str  # 'sms' or 'email'
    destination: str  # a phone number or an email address
    body: str


class DeliveryError(Exception):
    """The message was not delivered; the worker retries it later. The text must never carry the body."""


class Sender(Protocol):
    """What an SMS or email gateway implements: deliver one message or raise DeliveryError.

    Delivery is at least once: a worker that dies after the gateway accepted a message but before it
    recorded the fact sends it again, with the same message id, so a gateway can drop the duplicate.
    """

    name: str

    def send(self, message: OutgoingMessage) -> None: ...


def mask(destination: str) -> str:
    """Enough of a phone number or address to recognise it in a log, not enough to reuse it."""
    local, at, domain = destination.partition("@")
    if at:
        return f"{local[:1]}***@{domain}"
    return f"{'*' * max(0, len(destination) - 4)}{destination[-4:]}"


class LogSender:
    """Delivers to the worker's log: the development stand-in for a gateway.

    With reveal_body off (production) the log records that a message went out, never what it said.
    """

    name = "log"

    def __init__(self, *, reveal_body: bool):
        self.reveal_body = reveal_body

    def send(self, message: OutgoingMessage) -> None:
        extra = {"message_id": message.id, "channel": message.channel}
        if self.reveal_body:
            extra.update(destination=message.destination, body=message.body)
        else:
            extra.update(destination=mask(message.destination))
        log.info("otp message delivered to the log", extra=extra)


class HttpGatewaySender:
    """POSTs each message as JSON to a gateway; any 2xx is delivered, anything else is retried."""

    name = "http"

    def __init__(self, url: str, *, timeout: float = GATEWAY_TIMEOUT_SECONDS):
        self.url, self.timeout = url, timeout
        self.http = requests.Session()

    def send(self, message: OutgoingMessage) -> None:
        payload: dict[str, Any] = {
            "id": message.id,
            "channel": message.channel,
            "destination": message.destination,
            "body": message.body,
        }
        try:
            response = self.http.post(
                self.url,
                json=payload,
                timeout=self.timeout,
                headers={"Idempotency-Key": f"toko-otp-message-{message.id}"},
            )
        except requests.RequestException as exc:
            raise DeliveryError(f"gateway unreachable: {type(exc).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"gateway answered {response.status_code}")


def make_sender(settings: Settings) -> Sender:
    """The sender the settings name (TOKO_OTP_SENDER)."""
    if settings.otp_sender == "http":
        assert settings.otp_gateway_url  # load_settings refuses TOKO_OTP_SENDER=http without it
        return HttpGatewaySender(settings.otp_gateway_url)
    return LogSender(reveal_body=settings.reveals_debug_codes)
