"""Every table of the shared schema, one module per aggregate."""

from common.db.models.catalog import Category, Item
from common.db.models.events import AppliedEvent, EventConsumer, EventDeadLetter, OutboxEvent
from common.db.models.otp import OtpChallenge, OtpMessage
from common.db.models.reports import ReportJob
from common.db.models.sales import ProjectedSale, ProjectedSaleLine
from common.db.models.transactions import IdempotencyKey, Transaction, TransactionLine
from common.db.models.users import LoginFailure, Registration, User, UserSession

__all__ = [
    "User",
    "UserSession",
    "OtpChallenge",
    "OtpMessage",
    "Category",
    "Item",
    "Transaction",
    "TransactionLine",
    "IdempotencyKey",
    "ReportJob",
    "LoginFailure",
    "Registration",
    "OutboxEvent",
    "EventConsumer",
    "AppliedEvent",
    "EventDeadLetter",
    "ProjectedSale",
    "ProjectedSaleLine",
]
