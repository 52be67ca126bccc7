"""Settings read once from the environment, typed and validated (see README, Configuration)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.fernet import Fernet

DEFAULT_DATABASE_URL = "sqlite:///roleup.db"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"


class SettingsError(Exception):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_app_token: str | None = field(default=None, repr=False)
    slack_api_url: str | None = None
    encryption_keys: tuple[str, ...] = field(default=(), repr=False)
    admins: frozenset[str] = frozenset()
    port: int = 3000
    public_url: str = "http://localhost:3000"
    aws_endpoint_url: str | None = None
    request_ttl_hours: float = 24.0
    # A failed request may be retried for this long; after that it needs a new request.
    retry_window_hours: float = 24.0
    invite_ttl_hours: float = 48.0
    scheduler_enabled: bool = True
    # Approvers are reminded of a request still pending after this many hours.
    reminder_hours: float = 4.0
    # How often each process compares the integrations table with its scheduled jobs.
    reconcile_seconds: int = 30
    # Seconds in one unit of an integration's sync interval: 60 in production; tests set 1 so
    # that "sync every 3" means every three seconds.
    sync_interval_unit_seconds: int = 60
    # Requests one client address may make to /invite/ pages per window, across all instances.
    invite_rate_limit: int = 30
    invite_rate_window_seconds: int = 60
    # Reverse proxies in front of the server whose X-Forwarded-For is believed; 0: the peer
    # address is the client's (a client could forge the header otherwise).
    trusted_proxies: int = 0
    # Bearer token GET /metrics (and /readyz's detail) asks for; None: open to anyone.
    metrics_token: str | None = field(default=None, repr=False)
    # "text" or "json" (one JSON object a line).
    log_format: str = "text"
    # /readyz calls the scheduler down when no process has claimed a job tick for this long.
    scheduler_stale_seconds: int = 120

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every variable of the README's table; raise SettingsError on a malformed one."""
        env = os.environ if env is None else env
        port = _int(env, "PORT", 3000, low=1, high=65535)
        keys = _fernet_keys(env.get("ROLEUP_ENCRYPTION_KEYS", ""))
        api_url = _url(env, "SLACK_API_URL")
        if api_url and not api_url.endswith("/"):
            api_url += "/"
        public_url = _url(env, "ROLEUP_PUBLIC_URL") or f"http://localhost:{port}"
        return cls(
            database_url=_database_url(env.get("DATABASE_URL") or DEFAULT_DATABASE_URL),
            slack_bot_token=env.get("SLACK_BOT_TOKEN") or None,
            slack_signing_secret=env.get("SLACK_SIGNING_SECRET") or None,
            slack_app_token=env.get("SLACK_APP_TOKEN") or None,
            slack_api_url=api_url,
            encryption_keys=keys,
            admins=frozenset(_csv(env.get("ROLEUP_ADMINS", ""))),
            port=port,
            public_url=public_url.rstrip("/"),
            aws_endpoint_url=_url(env, "AWS_ENDPOINT_URL"),
            request_ttl_hours=_float(env, "ROLEUP_REQUEST_TTL_HOURS", 24.0),
            retry_window_hours=_float(env, "ROLEUP_RETRY_WINDOW_HOURS", 24.0),
            invite_ttl_hours=_float(env, "ROLEUP_INVITE_TTL_HOURS", 48.0),
            scheduler_enabled=env.get("ROLEUP_SCHEDULER", "on").lower()
            not in ("off", "0", "false"),
            reminder_hours=_float(env, "ROLEUP_REMINDER_HOURS", 4.0),
            reconcile_seconds=_int(env, "ROLEUP_RECONCILE_SECONDS", 30, low=1, high=3600),
            sync_interval_unit_seconds=_int(
                env, "ROLEUP_SYNC_INTERVAL_UNIT_SECONDS", 60, low=1, high=60
            ),
            invite_rate_limit=_int(env, "ROLEUP_INVITE_RATE_LIMIT", 30, low=1, high=1_000_000),
            invite_rate_window_seconds=_int(
                env, "ROLEUP_INVITE_RATE_WINDOW_SECONDS", 60, low=1, high=86_400
            ),
            trusted_proxies=_int(env, "ROLEUP_TRUSTED_PROXIES", 0, low=0, high=10),
            metrics_token=_metrics_token(env),
            log_format=log_format(env),
            scheduler_stale_seconds=_int(
                env, "ROLEUP_SCHEDULER_STALE_SECONDS", 120, low=10, high=86_400
            ),
        )

    def require_http(self) -> None:
        """What `roleup serve` cannot run without."""
        if not self.slack_bot_token:
            raise SettingsError("SLACK_BOT_TOKEN is required: the bot token, xoxb-...")
        if not self.slack_signing_secret:
            raise SettingsError("SLACK_SIGNING_SECRET is required: the app's signing secret")
        self.require_keys()

    def require_worker(self) -> None:
        """What `roleup worker` cannot run without: it posts to Slack but takes no requests."""
        if not self.slack_bot_token:
            raise SettingsError("SLACK_BOT_TOKEN is required: the bot token, xoxb-...")
        self.require_keys()
        if not self.scheduler_enabled:
            raise SettingsError(
                "ROLEUP_SCHEDULER=off turns off the jobs `roleup worker` runs: unset it for the "
                "worker (web processes take `roleup serve --no-jobs`)"
            )

    def require_keys(self) -> None:
        if not self.encryption_keys:
            raise SettingsError(
                "ROLEUP_ENCRYPTION_KEYS is required: comma-separated Fernet keys "
                "(make one with `roleup keygen`)"
            )

    def require_socket(self) -> None:
        if not self.slack_app_token:
            raise SettingsError(
                "SLACK_APP_TOKEN is required by `roleup socket`: an app token, xapp-..."
            )
        if not self.slack_app_token.startswith("xapp-"):
            raise SettingsError("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
        if not self.slack_bot_token:
            raise SettingsError("SLACK_BOT_TOKEN is required: the bot token, xoxb-...")
        self.require_keys()


LOG_FORMATS = ("text", "json")


def log_format(env: Mapping[str, str] | None = None) -> str:
    """ROLEUP_LOG_FORMAT, checked (the CLI sets its logging up before the other settings)."""
    env = os.environ if env is None else env
    raw = env.get("ROLEUP_LOG_FORMAT", "").strip().lower() or "text"
    if raw not in LOG_FORMATS:
        raise SettingsError(f"ROLEUP_LOG_FORMAT must be text or json, got {raw[:20]!r}")
    return raw


def _metrics_token(env: Mapping[str, str]) -> str | None:
    token = env.get("ROLEUP_METRICS_TOKEN", "").strip()
    if not token:
        return None
    if len(token) < 16 or not token.isascii() or not token.isprintable() or " " in token:
        raise SettingsError(
            "ROLEUP_METRICS_TOKEN must be at least 16 printable ASCII characters without spaces"
        )
    return token


def _csv(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise SettingsError(f"{name} must be a whole number from {low} to {high}, got {raw[:20]!r}")
    return int(raw)


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 24 * 365:
        raise SettingsError(f"{name} must be a positive number of hours, got {raw[:20]!r}")
    return value


def _url(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not raw.startswith(("http://", "https://")):
        raise SettingsError(f"{name} must be an http:// or https:// URL, got {raw[:40]!r}")
    return raw


def _database_url(raw: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(raw)
        url.port  # noqa: B018 (a port that is no number, as after a stray "@", raises here)
    except (ArgumentError, ValueError):  # the messages quote the URL, password and all
        raise SettingsError(
            "DATABASE_URL must be a SQLAlchemy URL such as sqlite:///roleup.db"
        ) from None
    if "@" in (url.host or ""):
        # The parser cut the password at its first "@" and took the rest for the host, which
        # every later message would then show.
        raise SettingsError(
            "DATABASE_URL has an '@' in its password: write it percent-encoded, as %40"
        )
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise SettingsError("DATABASE_URL must point at SQLite or PostgreSQL")
    if url.get_backend_name() == "postgresql" and url.drivername in ("postgresql", "postgres"):
        # psycopg 3 is the driver this project installs; plain postgresql:// would ask for psycopg2.
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def _fernet_keys(raw: str) -> tuple[str, ...]:
    keys = tuple(_csv(raw))
    for index, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode())
        except ValueError:
            raise SettingsError(
                f"ROLEUP_ENCRYPTION_KEYS: key {index} is not a Fernet key "
                "(32 url-safe base64-encoded bytes)"
            ) from None
    return keys
