"""The e-mail (SMTP) alert channel.

A subscription with ``channel = "email"`` keeps its address in the
subscription's ``url`` column as ``mailto:ADDRESS`` (no schema change), and its
deliveries go through the same outbox as webhooks: one row per
(subscription, warning_id, transition), retried with backoff, dead-lettered
after N attempts. Only the message is different: a plain-text mail rendered
from the stored delivery body.

The mail carries **no personal free text** and no household id: warning id,
rule, level, org unit, handling level and org unit, the transition and its
time, and a link path into the chairs' workspace. Notes, indicators and the
like never leave the platform by mail.

The same holds for the other subjects of the outbox (``alerts.notices``): a
partner agency's referral mail says referral id, agency, transition, basis or
outcome and time, and points to ``GET /v1/referrals``; a break-glass notice says
grant id, grantee, her role and scope, the owner's org unit and the expiry, and
points to ``GET /v1/break-glass`` — neither the household id nor the reason.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import orjson

from events.errors import JiaheError

MAILTO = "mailto:"
#: the workspace, opened on one warning (relative: the mail does not know the public host).
LINK_PATH = "/workspace/#/alerts/{warning_id}"
DEFAULT_SENDER = "jiahe-alerts@localhost"
#: what the body may say, and nothing else.
FIELDS = ("warning_id", "rule_id", "level", "org_unit", "handling_level", "handling_org_unit",
          "transition", "at", "link")
TRANSITION_LABELS = {
    "warning.raised": "raised",
    "warning.acknowledged": "acknowledged",
    "warning.resolved": "resolved",
    "warning.reopened": "reopened",
    "warning.transferred": "transferred",
}


class SmtpError(JiaheError):
    """A delivery attempt failed; the message becomes the outbox row's ``last_error``."""


def parse_hostport(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) → (host, port); ValueError when malformed."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def address_of(url: str) -> str:
    return url.removeprefix(MAILTO)


def _label(transition: str) -> str:
    base, reopened, count = transition.partition("#")  # rules.transitions: after a reopening
    if reopened:
        if base == "warning.reopened":
            return f"reopened (reopening {count})"
        return f"{_label(base)} (after reopening {count})"
    if transition.startswith("warning.assessed:"):  # risk@instant
        return "assessed: risk " + transition.split(":", 1)[1].rsplit("@", 1)[0]
    if transition.startswith("warning.escalated:"):
        return "escalated to " + transition.split(":", 1)[1]
    if transition.startswith("warning.repeat:"):
        return "still unacknowledged (reminder " + transition.split(":", 1)[1] + ")"
    if transition.startswith("warning.assigned:"):  # rules.transitions: assignee@instant
        return "assigned to " + transition.split(":", 1)[1].rsplit("@", 1)[0]
    return TRANSITION_LABELS.get(transition, transition)


def facts(body: bytes) -> dict[str, str]:
    """The whitelisted facts of a stored delivery body (the webhook JSON)."""
    payload: dict[str, Any] = orjson.loads(body)
    warning, record = payload["warning"], payload["record"]
    return {
        "warning_id": str(warning["warning_id"]),
        "rule_id": str(warning["rule_id"]),
        "level": str(warning["level"]),
        "org_unit": str(warning["org_unit"]),
        "handling_level": str(record.get("handling_level") or record.get("to_level") or "-"),
        "handling_org_unit": str(record.get("handling_org_unit") or "-"),
        "transition": str(payload["transition"]),
        "at": str(record.get("at", "-")),
        "link": LINK_PATH.format(warning_id=warning["warning_id"]),
    }


def _block(f: dict[str, str]) -> list[str]:
    return [
        f"warning:        {f['warning_id']}",
        f"rule:           {f['rule_id']}",
        f"level:          {f['level']}",
        f"org unit:       {f['org_unit']}",
        f"handling level: {f['handling_level']} ({f['handling_org_unit']})",
        f"event:          {_label(f['transition'])}",
        f"time:           {f['at']}",
        f"link:           {f['link']}",
    ]


WARNINGS_FOOTER = "Sign in to the jiahe workspace to see, acknowledge or resolve these warnings."
REFERRAL_FOOTER = "Sign in to jiahe to see the referral and accept, decline or close it."
NOTICE_FOOTER = "Sign in to jiahe to see the grant, its reason and the reads made under it."


def _message(subject: str, lines: list[str], to: str, sender: str,
             key: str | None, footer: str = WARNINGS_FOOTER) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain="jiahe.local")
    if key is not None:
        msg["X-Jiahe-Delivery"] = key
    lines = [*lines, "", footer]
    msg.set_content("\n".join(lines) + "\n", charset="utf-8")
    return msg


REFERRAL_LINK = "/v1/referrals"
NOTICE_LINK = "/v1/break-glass"


def _render_referral(payload: dict[str, Any], to: str, sender: str,
                     key: str | None) -> EmailMessage:
    referral, record = payload["referral"], payload["record"]
    transition = str(payload["transition"])
    lines = [
        f"referral:       {referral['referral_id']}",
        f"agency:         {referral['agency']}",
        f"event:          {transition.removeprefix('referral.')}",
        f"district:       {referral['district']}",
    ]
    for name in ("basis", "outcome"):
        if record.get(name):
            lines.append(f"{name + ':':<16}{record[name]}")
    lines += [f"time:           {record.get('at', '-')}", f"link:           {REFERRAL_LINK}"]
    subject = (f"[jiahe] referral {referral['referral_id']} "
               f"{transition.removeprefix('referral.')} - {referral['agency']}")
    return _message(subject, lines, to, sender, key, REFERRAL_FOOTER)


def _render_notice(payload: dict[str, Any], to: str, sender: str,
                   key: str | None) -> EmailMessage:
    notice = payload["notice"]
    lines = [
        f"grant:          {notice['grant_id']}",
        f"opened by:      {notice['user']} ({notice['role']}, {notice['scope']})",
        f"household of:   {notice['owner_org_unit']}",
        f"granted at:     {notice['granted_at']}",
        f"expires at:     {notice['expires_at']}",
        f"link:           {NOTICE_LINK}",
    ]
    subject = f"[jiahe] break-glass access to a household of {notice['owner_org_unit']}"
    return _message(subject, lines, to, sender, key, NOTICE_FOOTER)


def render(body: bytes, to: str, sender: str = DEFAULT_SENDER,
           key: str | None = None) -> EmailMessage:
    """A plain-text mail for one outbox row: an alert, a referral record or a notice."""
    payload: dict[str, Any] = orjson.loads(body)
    if "referral" in payload:
        return _render_referral(payload, to, sender, key)
    if "notice" in payload:
        return _render_notice(payload, to, sender, key)
    f = facts(body)
    subject = (f"[jiahe] {f['level'].upper()} {f['rule_id']} {_label(f['transition'])}"
               f" - {f['org_unit']}")
    return _message(subject, _block(f), to, sender, key)


def render_group(bodies: list[bytes], to: str, district: str, rule_id: str,
                 sender: str = DEFAULT_SENDER, key: str | None = None) -> EmailMessage:
    """One mail for a routing group (``alerts.routing``): several outbox rows, one district
    and rule."""
    blocks = [_block(facts(body)) for body in bodies]
    subject = f"[jiahe] {len(bodies)} alert(s) {rule_id} - {district}"
    lines: list[str] = []
    for number, block in enumerate(blocks, start=1):
        lines += ["", f"--- {number}/{len(blocks)}", *block]
    return _message(subject, lines[1:], to, sender, key)


@dataclass(frozen=True)
class SmtpSender:
    """One SMTP connection per message: alerts are rare and a dead peer must not wedge us."""

    host: str
    port: int
    sender: str = DEFAULT_SENDER
    timeout_s: float = 10.0

    @classmethod
    def parse(cls, hostport: str, sender: str = DEFAULT_SENDER) -> SmtpSender:
        host, port = parse_hostport(hostport)
        return cls(host, port, sender)

    def send(self, body: bytes, url: str, key: str | None = None) -> None:
        """Send the alert of one outbox row to the subscription's address, or raise SmtpError."""
        self.send_message(render(body, address_of(url), self.sender, key))

    def send_message(self, msg: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                refused = smtp.send_message(msg)
        except OSError as exc:  # SMTPException and timeouts are OSErrors
            raise SmtpError(f"SMTP {type(exc).__name__}: {exc}") from exc
        if refused:
            raise SmtpError(f"SMTP refused {sorted(refused)}")
