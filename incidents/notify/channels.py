"""One small transport per channel type: `send(message) -> None`, raising `NotifyError`.

This is the seam between monitord and the network libraries (smtplib, urllib): their
exceptions are mapped here, once, into `NotifyError(recoverable, reason)`, the notifier's
`(retry, err)` of Alertmanager. Recoverable: the peer is down or busy (connection refused,
timeout, DNS, 5xx, 429, SMTP 4xx) and the ticket waits for a retry. Not recoverable: retrying
cannot help (authentication refused, 4xx, SMTP 5xx, a certificate that does not verify, a
malformed address); the ticket is marked failed.

Reasons are short, one line, and never carry a secret or a URL: the Telegram token lives in the
request path, a webhook URL may carry its own token, so no library message that could quote a
URL is passed through, and every reason goes through the secret redactor as well.

Every call blocks; the worker runs transports in threads.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import re
import smtplib
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, parseaddr
from typing import Any, Mapping, Protocol

from monitord import __version__
from monitord.config import EmailChannel, LogChannel, TelegramChannel, WebhookChannel
from monitord.incidents.notify.render import one_line
from monitord.secrets import MASK, REDACTOR, Secret

log = logging.getLogger("monitord.notify")
TELEGRAM_TEXT_MAX = 4096  # UTF-16 code units, the Bot API's limit for sendMessage
RESPONSE_MAX = 64 * 1024
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://\S*")
_ADDRESS = re.compile(r"^[^\s@<>()\[\],;:\\\"]+@[^\s@<>()\[\],;:\\\"]+$")
_HEADER_UNSAFE = re.compile(r"[^\x21-\x7e ]")
# CRLF line ends; headers are not folded below RFC 5322's 998 (Python folds some long subjects
# before their first word, which unfolds to a leading space). Subjects are capped at 200.
SMTP_POLICY = SMTP.clone(max_line_length=998)


class NotifyError(Exception):
    """A delivery that did not happen. `recoverable`: try again later (the ticket stays
    pending); otherwise the ticket is marked failed. `retry_after`: seconds the peer asked us
    to wait (HTTP 429), if it said."""

    def __init__(self, recoverable: bool, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.recoverable = recoverable
        self.reason = reason
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"NotifyError(recoverable={self.recoverable}, reason={self.reason!r})"


@dataclass(frozen=True, slots=True)
class Message:
    """One rendered ticket for one recipient on one channel."""

    idempotency_key: str
    channel: str
    event: str
    subject: str  # one line, capped (render.one_line)
    text: str
    html: str
    address: str | None = None  # e-mail address / chat id; None: the channel's fixed targets
    recipient_name: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)  # the outbox payload (webhook)


class Transport(Protocol):
    name: str

    def send(self, message: Message) -> None: ...


def scrub(text: str, *secrets: str) -> str:
    """A reason safe to store and log: no secret, no URL, one line, at most 300 characters."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK).replace(urllib.parse.quote(secret, safe=""), MASK)
    text = _URL.sub("<url>", text)
    return one_line(REDACTOR.redact(text), 300)


def header_safe(value: str) -> str:
    """A header value that cannot start a new header: printable ASCII only (others
    percent-encoded, CR and LF included)."""
    return _HEADER_UNSAFE.sub(lambda m: urllib.parse.quote(m.group(), safe=""), value)[:400]


def message_id(idempotency_key: str, sender: str) -> str:
    """The same key gives the same Message-ID, so a repeated send (after a crash) is one
    message to mail clients and archives that deduplicate on it."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    domain = parseaddr(sender)[1].rpartition("@")[2]
    if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", domain or ""):
        domain = "monitord.invalid"
    return f"<monitord.{digest}@{domain}>"


def _status_error(status: int, what: str, retry_after: float | None = None) -> NotifyError:
    if status == 429:
        return NotifyError(True, f"{what} answered 429 (rate limited)", retry_after)
    if status in (408, 425) or status >= 500:
        return NotifyError(True, f"{what} answered {status}", retry_after)
    if status in (401, 403):
        return NotifyError(False, f"{what} answered {status} (not authorised: check the "
                                  "credentials)")
    if 300 <= status < 400:
        return NotifyError(False, f"{what} answered {status} (redirects are not followed; "
                                  "configure the final URL)")
    return NotifyError(False, f"{what} answered {status}")


def _network_error(exc: BaseException, what: str, timeout: float) -> NotifyError:
    """Map a socket-level failure; library text that could quote a URL is not used."""
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason
    if isinstance(exc, ssl.SSLCertVerificationError):
        return NotifyError(False, f"{what}: TLS certificate does not verify "
                                  f"({exc.verify_message or 'verification failed'})")
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return NotifyError(True, f"{what}: timed out after {timeout:g}s")
    if isinstance(exc, ConnectionRefusedError):
        return NotifyError(True, f"{what}: connection refused")
    if isinstance(exc, socket.gaierror):
        return NotifyError(True, f"{what}: host name does not resolve ({exc.strerror})")
    if isinstance(exc, ssl.SSLError):
        return NotifyError(True, f"{what}: TLS error ({exc.reason or type(exc).__name__})")
    if isinstance(exc, (ConnectionError, http.client.HTTPException)):
        return NotifyError(True, f"{what}: connection lost ({type(exc).__name__})")
    if isinstance(exc, OSError):
        return NotifyError(True, f"{what}: network error ({exc.strerror or type(exc).__name__})")
    return NotifyError(True, f"{what}: {type(exc).__name__}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx surfaces as an HTTPError and is mapped as not recoverable


_OPENER = urllib.request.build_opener(_NoRedirect())


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    body: bytes
    headers: Mapping[str, str]


def http_post(url: str, body: bytes, headers: Mapping[str, str], timeout: float,
              what: str) -> HttpAnswer:
    """POST and return the answer whatever its status; network failures raise NotifyError."""
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "User-Agent": f"monitord/{__version__}", **headers})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return HttpAnswer(response.status, response.read(RESPONSE_MAX),
                              dict(response.headers.items()))
    except urllib.error.HTTPError as exc:
        try:
            data = exc.read(RESPONSE_MAX)
        except Exception:
            data = b""
        return HttpAnswer(exc.code, data, dict(exc.headers.items()) if exc.headers else {})
    except http.client.InvalidURL:
        raise NotifyError(False, f"{what}: the URL is not valid") from None
    except ValueError:  # an illegal header value or URL: a bug or a bad setting, not the peer
        raise NotifyError(False, f"{what}: request refused before sending (invalid URL or "
                                 "header)") from None
    except Exception as exc:
        raise _network_error(exc, what, timeout) from None


def _retry_after(headers: Mapping[str, str], fallback: Any = None) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), fallback)
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


# -- e-mail ------------------------------------------------------------------------------------


class EmailTransport:
    """SMTP: STARTTLS, implicit TLS or plain; AUTH when a username is set. One
    multipart/alternative message (text and HTML) per ticket."""

    def __init__(self, config: EmailChannel, password: Secret | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.config = config
        self.name = config.name
        self._password = password
        self._ssl = ssl_context

    def recipients(self, message: Message) -> list[str]:
        addresses = [message.address] if message.address else list(self.config.to)
        if not addresses:
            raise NotifyError(False, "no e-mail address for this recipient and no fixed `to` "
                                     "addresses on the channel")
        for address in addresses:
            if not _ADDRESS.match(address):
                raise NotifyError(False, "recipient e-mail address is not valid: "
                                         f"{one_line(address, 80)!r}")
        return addresses

    def build(self, message: Message) -> EmailMessage:
        addresses = self.recipients(message)
        mail = EmailMessage(policy=SMTP_POLICY)
        try:
            mail["Subject"] = one_line(message.subject)
            mail["From"] = self.config.sender
            if message.address and message.recipient_name:
                local, _, domain = message.address.rpartition("@")
                mail["To"] = Address(display_name=one_line(message.recipient_name, 100),
                                     username=local, domain=domain)
            else:
                mail["To"] = ", ".join(addresses)
            mail["Date"] = formatdate(localtime=False, usegmt=True)
            mail["Message-ID"] = message_id(message.idempotency_key, self.config.sender)
            mail["X-Monitord-Idempotency-Key"] = header_safe(message.idempotency_key)
            mail["X-Monitord-Event"] = header_safe(message.event)
            mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to tickets
            mail.set_content(message.text, cte="quoted-printable")
            mail.add_alternative(message.html, subtype="html", cte="quoted-printable")
        except (ValueError, TypeError) as exc:
            raise NotifyError(False, f"e-mail cannot be built ({type(exc).__name__})") from None
        return mail

    def send(self, message: Message) -> None:
        mail = self.build(message)
        addresses = self.recipients(message)
        envelope_from = parseaddr(self.config.sender)[1] or self.config.sender
        cfg = self.config
        timeout = cfg.timeout.total_seconds()
        password = self._password.reveal() if self._password else ""
        what = f"SMTP {cfg.smtp_host}:{cfg.smtp_port}"
        context = self._ssl or ssl.create_default_context()
        smtp: smtplib.SMTP | None = None
        try:
            if cfg.security == "tls":
                smtp = smtplib.SMTP_SSL(cfg.smtp_host, cfg.smtp_port, timeout=timeout,
                                        context=context)
            else:
                smtp = smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=timeout)
            if cfg.security == "starttls":
                smtp.starttls(context=context)
            if cfg.username:
                smtp.login(cfg.username, password)
            refused = smtp.send_message(mail, from_addr=envelope_from, to_addrs=addresses)
        except smtplib.SMTPAuthenticationError as exc:
            if 400 <= exc.smtp_code < 500:
                raise NotifyError(True, f"{what}: temporary authentication failure "
                                        f"({exc.smtp_code})") from None
            raise NotifyError(False, f"{what}: authentication failed ({exc.smtp_code}); check "
                                     "username and password") from None
        except smtplib.SMTPNotSupportedError:
            raise NotifyError(False, f"{what}: the server does not offer "
                                     f"{'STARTTLS' if cfg.security == 'starttls' else 'AUTH'}"
                                     " (check `security` and `username`)") from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _text in exc.recipients.values()})
            temporary = all(400 <= code < 500 for code in codes)
            raise NotifyError(temporary, f"{what}: recipient refused "
                                         f"({','.join(map(str, codes))})") from None
        except smtplib.SMTPConnectError as exc:
            raise NotifyError(True, f"{what}: connection not accepted ({exc.smtp_code})") \
                from None
        except smtplib.SMTPResponseException as exc:  # sender refused, data error, HELO
            text = exc.smtp_error.decode("utf-8", "replace") if isinstance(
                exc.smtp_error, bytes) else str(exc.smtp_error)
            reason = scrub(f"{what}: {exc.smtp_code} {one_line(text, 120)}", password)
            raise NotifyError(not 500 <= exc.smtp_code < 600, reason) from None
        except smtplib.SMTPServerDisconnected:
            raise NotifyError(True, f"{what}: the server closed the connection") from None
        except smtplib.SMTPException as exc:
            raise NotifyError(True, f"{what}: {type(exc).__name__}") from None
        except NotifyError:
            raise
        except Exception as exc:
            raise _network_error(exc, what, timeout) from None
        finally:
            if smtp is not None:
                try:
                    smtp.quit()  # the message is accepted already: a failed QUIT changes nothing
                except Exception:
                    smtp.close()
        if refused:  # some of several fixed addresses refused; the others have the message
            log.warning("e-mail partly delivered channel=%s refused=%d key=%s", self.name,
                        len(refused), header_safe(message.idempotency_key))


# -- webhook -----------------------------------------------------------------------------------


def webhook_body(message: Message) -> bytes:
    """The JSON document POSTed: deterministic for a ticket, so a repeated send carries the
    same bytes and the same signature. ASCII-only JSON: hostile text stays a string value."""
    document = {"idempotency_key": message.idempotency_key, "channel": message.channel,
                "event": message.event, "subject": message.subject, "text": message.text,
                "ticket": dict(message.payload)}
    return json.dumps(document, ensure_ascii=True, sort_keys=True, separators=(",", ":"),
                      default=str).encode("ascii")


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookTransport:
    """JSON POST, signed: `X-Monitord-Signature: sha256=<hex HMAC-SHA256 of the body>`, and
    `Idempotency-Key` so the receiver can drop a repeat."""

    def __init__(self, config: WebhookChannel, hmac_secret: Secret | None = None) -> None:
        self.config = config
        self.name = config.name
        self._secret = hmac_secret

    def send(self, message: Message) -> None:
        body = webhook_body(message)
        headers = {"Content-Type": "application/json",
                   "Idempotency-Key": header_safe(message.idempotency_key),
                   "X-Monitord-Event": header_safe(message.event)}
        if self._secret is not None:
            headers["X-Monitord-Signature"] = signature(
                self._secret.reveal().encode("utf-8"), body)
        what = f"webhook {self.name}"
        try:
            answer = http_post(self.config.url, body, headers,
                               self.config.timeout.total_seconds(), what)
        except NotifyError as exc:
            raise NotifyError(exc.recoverable, scrub(exc.reason, self.config.url),
                              exc.retry_after) from None
        if not 200 <= answer.status < 300:
            raise _status_error(answer.status, what, _retry_after(answer.headers))


# -- Telegram ----------------------------------------------------------------------------------


def cap_utf16(text: str, limit: int = TELEGRAM_TEXT_MAX) -> str:
    """Cut `text` to `limit` UTF-16 code units (how the Bot API counts), ending with '…'."""
    if len(text.encode("utf-16-le", "surrogatepass")) // 2 <= limit:
        return text
    out, used = [], 0
    for char in text:
        units = 2 if ord(char) > 0xFFFF else 1
        if used + units > limit - 1:
            break
        out.append(char)
        used += units
    return "".join(out) + "…"


class TelegramTransport:
    """Bot API sendMessage, plain text (no parse_mode: nothing in a ticket is markup). The
    token is part of the URL path, so no URL and no library message is ever kept."""

    def __init__(self, config: TelegramChannel, token: Secret) -> None:
        self.config = config
        self.name = config.name
        self._token = token

    def send(self, message: Message) -> None:
        chat_id = message.address or self.config.chat_id
        if not chat_id:
            raise NotifyError(False, "no Telegram chat id for this recipient and no `chat_id` "
                                     "on the channel")
        text = cap_utf16(f"{message.subject}\n\n{message.text}".strip())
        body = json.dumps({"chat_id": chat_id, "text": text,
                           "link_preview_options": {"is_disabled": True}},
                          ensure_ascii=True).encode("ascii")
        token = self._token.reveal()
        url = f"{self.config.base_url.rstrip('/')}/bot{token}/sendMessage"
        what = "Telegram Bot API"
        try:
            answer = http_post(url, body, {"Content-Type": "application/json"},
                               self.config.timeout.total_seconds(), what)
        except NotifyError as exc:
            raise NotifyError(exc.recoverable, scrub(exc.reason, token, url),
                              exc.retry_after) from None
        try:
            data = json.loads(answer.body or b"{}")
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        if 200 <= answer.status < 300 and data.get("ok", True) is not False:
            return
        status = answer.status
        if status < 300:  # 200 with {"ok": false}: the error code is in the body
            code = data.get("error_code")
            status = code if isinstance(code, int) and 300 <= code < 600 else 400
        parameters = data.get("parameters") if isinstance(data.get("parameters"), dict) else {}
        error = _status_error(status, what, _retry_after(answer.headers,
                                                          parameters.get("retry_after")))
        description = data.get("description")
        if isinstance(description, str) and description:
            error = NotifyError(error.recoverable, scrub(
                f"{error.reason}: {one_line(description, 120)}", token, url), error.retry_after)
        raise error


# -- log ---------------------------------------------------------------------------------------


class LogTransport:
    """Writes one line per ticket to the log (journald): the channel that always works."""

    def __init__(self, config: LogChannel, logger: logging.Logger | None = None) -> None:
        self.config = config
        self.name = config.name
        self._log = logger or logging.getLogger("monitord.notify.ticket")

    def send(self, message: Message) -> None:
        self._log.info("ticket channel=%s event=%s key=%s to=%s subject=%s", self.name,
                       header_safe(message.event), header_safe(message.idempotency_key),
                       one_line(message.recipient_name or message.address or "-", 80),
                       json.dumps(message.subject, ensure_ascii=True))


def build_transport(channel: Any) -> Transport:
    """The transport for a configured channel, its secrets resolved now (SecretSourceError
    propagates: the caller decides what a missing secret means)."""
    if isinstance(channel, EmailChannel):
        return EmailTransport(channel, channel.password.resolve() if channel.password else None)
    if isinstance(channel, TelegramChannel):
        return TelegramTransport(channel, channel.bot_token.resolve())
    if isinstance(channel, WebhookChannel):
        return WebhookTransport(channel, channel.hmac_secret.resolve()
                                if channel.hmac_secret else None)
    if isinstance(channel, LogChannel):
        return LogTransport(channel)
    raise TypeError(f"no transport for channel type {type(channel).__name__}")
