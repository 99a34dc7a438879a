"""The email digest: one message per saved search per batch, listing its new and updated notices.

Rendering only: the DAG sends it through Airflow's SMTP connection
(``SmtpHook``, connection ``ALERT_SMTP_CONN_ID``), so this module carries no
Airflow import and never sees SMTP credentials.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

# (to, subject, html) -> None; raises when the message could not be sent
EmailSender = Callable[[str, str, str], None]


def _facts(card: dict) -> str:
    value = card.get("value_amount")
    facts = [card.get("buyer"), card.get("country"),
             f"closes {card['closing_date']}" if card.get("closing_date") else None,
             f"{value:,.0f} {card.get('currency', '')}".strip() if value is not None else None]
    return " · ".join(f for f in facts if f)


def render(search_name: str, items: list[dict], feed_path: str) -> tuple[str, str]:
    """(subject, HTML body); ``items`` are ``{"kind", "card", ...}`` with kind ``new`` or ``update``."""
    new = sum(i["kind"] == "new" for i in items)
    updates = len(items) - new
    parts = ([f"{new} new"] if new else []) + ([f"{updates} updated"] if updates else [])
    subject = f"[Tender alert] {search_name}: {' and '.join(parts)} notice{'s' if len(items) != 1 else ''}"
    rows = []
    for item in items:
        card = item["card"]
        label = "Update" if item["kind"] == "update" else "New"
        title = escape(card.get("title") or card.get("id", ""))
        url = card.get("url") or ""
        if url.startswith(("http://", "https://")):
            title = f'<a href="{escape(url, quote=True)}">{title}</a>'
        rows.append(f"<li><strong>{label}:</strong> {title}<br>{escape(_facts(card))}"
                    f"<br><small>id: {escape(card.get('id', ''))}</small></li>")
    html = (f"<p>Saved search <strong>{escape(search_name)}</strong> matched "
            f"{len(items)} notice{'s' if len(items) != 1 else ''} in the latest batch.</p>"
            f"<ul>{''.join(rows)}</ul><p><small>Atom feed of this search: {escape(feed_path)}</small></p>")
    return subject, html
