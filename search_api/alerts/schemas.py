"""Saved-search request and response bodies."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from search_api.models import SearchBody

EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
Delivery = Literal["webhook", "email", "feed"]


class SavedSearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "Road works in Sindh over PKR 50M",
         "params": {"q": "road works", "region": "Sindh", "min_value": 50000000},
         "delivery": "webhook", "webhook_url": "https://hooks.example.org/tenders"},
        {"name": "Hospital equipment, UK", "params": {"q": "hospital equipment", "country": "United Kingdom"},
         "delivery": "email", "email": "buyer-watch@example.org"},
        {"name": "Solar street lights", "params": {"q": "solar street lights"}, "delivery": "feed"},
    ]})

    name: str = Field(min_length=1, max_length=200, description="A label for people.")
    params: SearchBody = Field(description="Query and filters exactly as POST /search takes them "
                                             "(limit and offset are ignored).")
    delivery: Delivery = Field("feed", description="webhook, email or feed (the Atom feed works for all).")
    webhook_url: str | None = Field(None, max_length=2048, description="http(s) URL POSTed with each batch's "
                                    "matches (delivery=webhook).")
    email: str | None = Field(None, max_length=320, description="Recipient of the digest (delivery=email).")

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not EMAIL.match(value.strip()):
            raise ValueError("not an email address")
        return value.strip() if value else value

    @model_validator(mode="after")
    def _target(self) -> SavedSearchIn:
        if self.delivery == "webhook" and not self.webhook_url:
            raise ValueError("delivery=webhook needs webhook_url")
        if self.delivery == "email" and not self.email:
            raise ValueError("delivery=email needs email")
        return self

    def stored_params(self) -> dict[str, Any]:
        return self.params.model_dump(mode="json", exclude={"limit", "offset"}, exclude_defaults=True) | \
            {"q": self.params.q}

    @property
    def target(self) -> str:
        return {"webhook": self.webhook_url, "email": self.email}.get(self.delivery) or ""


class DeliveryStats(BaseModel):
    sent: int = 0
    pending: int = 0
    parked: int = 0
    feed: int = 0
    last_parked_reason: str = Field("", description="Why the latest parked delivery failed.")


SAVED_EXAMPLE: dict[str, Any] = {
    "id": "ss_3f9c2a7e", "name": "Road works in Sindh over PKR 50M",
    "params": {"q": "road works", "region": "Sindh", "min_value": 50000000, "currency": "PKR"},
    "delivery": "webhook", "webhook_url": "https://hooks.example.org/tenders", "email": None,
    "feed_url": "/saved-searches/ss_3f9c2a7e/feed?key=k7Vq", "created_at": "2026-11-29T12:00:00Z",
    "deliveries": {"sent": 4, "pending": 0, "parked": 0, "feed": 0, "last_parked_reason": ""},
}


class SavedSearchOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SAVED_EXAMPLE]})

    id: str
    name: str
    params: dict[str, Any]
    delivery: Delivery
    webhook_url: str | None = None
    email: str | None = None
    feed_url: str = Field(description="Atom feed of this search's matches (the key in it grants read access).")
    created_at: datetime
    deliveries: DeliveryStats | None = None


class SavedSearchCreated(SavedSearchOut):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {**SAVED_EXAMPLE, "deliveries": None, "token": "tsk_9b1e…", "webhook_secret": "whs_51c0…"}]})

    token: str | None = Field(None, description="Your owner token, returned once when it is new: send it as "
                              "`Authorization: Bearer <token>` to list, read, delete and add saved searches.")
    webhook_secret: str | None = Field(None, description="HMAC-SHA256 key of the X-Tender-Signature header "
                                       "(delivery=webhook), returned only here.")


class SavedSearchList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [SAVED_EXAMPLE]}]})

    items: list[SavedSearchOut]
