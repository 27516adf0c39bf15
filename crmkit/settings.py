"""Settings: the ``crmkit.toml`` config file, environment overrides and plugin settings.

The file is looked up at ``--config``, then ``$CRMKIT_CONFIG``, then ``./crmkit.toml``.
``$CRMKIT_DATABASE_URL`` overrides the database URL. A relative SQLite path is read relative
to the config file's folder.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import phonenumbers
import tomli_w
from attrs import field, frozen

from crmkit.assignment.config import AssignmentSettings
from crmkit.config_file import DEFAULT_CONFIG_NAME, DEFAULT_DATABASE_URL, resolve_sqlite_path
from crmkit.entities.custom_fields import CustomField
from crmkit.errors import ConfigError


@frozen
class SettingSpec:
    """One setting a plugin declares (``crmkit_settings`` hook).

    ``type`` is one of ``str``, ``int``, ``float``, ``bool``, ``list`` or ``dict``.
    """

    name: str
    type: type
    default: Any = None
    description: str = ""
    required: bool = False

    def check(self, plugin: str, value: Any) -> Any:
        """Return ``value`` if it has the declared type, else raise ``ConfigError``."""
        ok = isinstance(value, self.type) and not (self.type is int and isinstance(value, bool))
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not ok:
            raise ConfigError(
                f"setting plugins.{plugin}.{self.name} must be {self.type.__name__},"
                f" got {type(value).__name__} {value!r}"
            )
        return value


@frozen
class WebhookConfig:
    """A webhook sink declared in the config file (``[[webhooks]]``)."""

    name: str
    url: str
    secret: str
    patterns: tuple[str, ...] = field(default=("*",), converter=tuple)
    timeout_seconds: float = 10.0
    batch_size: int = 1  # events per request (1 to 100); above 1 the batch body is used

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.batch_size, int) or not 1 <= self.batch_size <= 100:
            raise ValueError(
                f"webhook {self.name!r}: batch_size must be a whole number from 1 to 100,"
                f" not {self.batch_size!r}"
            )


@frozen
class RelaySettings:
    """How the relay worker retries: attempts before a delivery is dead, backoff, leases."""

    max_attempts: int = 8
    backoff_seconds: float = 2.0
    max_backoff_seconds: float = 3600.0
    lease_seconds: float = 300.0
    batch_size: int = 1000
    #: deliver webhooks to loopback, private and link-local addresses too (local testing;
    #: off by default: see crmkit.outbound)
    allow_internal_addresses: bool = False


def _strings(value: object) -> tuple[str, ...]:
    """One string or a list of them, as a tuple (``"10.0.0.1"`` is one address, not nine)."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(str(item) for item in value)
    raise ValueError(f"expected a list of addresses, got {value!r}")


@frozen
class ApiSettings:
    """The REST API (``crmkit serve``): where it listens, how large a request body may be,
    how many lead-form submissions one client address may make per window, and whether the
    server logs a line per request."""

    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = ""  # how web sites reach the API (form snippets); default http://host:port
    max_body_bytes: int = 1_048_576
    form_rate_limit: int = 10
    form_rate_window_seconds: float = 60.0
    docs_path: str = "/schema"
    access_log: bool = True  # uvicorn's line per request (crmkit serve --no-access-log)
    #: proxies (addresses or networks) whose X-Forwarded-For is believed; none by default
    trusted_proxies: tuple[str, ...] = field(default=(), converter=_strings)
    form_max_field_chars: int = 5000  # a longer value in a lead form is refused (422)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.access_log, bool):
            raise ValueError(
                f"crmkit.api.access_log must be true or false, not {self.access_log!r}"
            )
        if not 0 < self.port < 65536:
            raise ValueError(f"crmkit.api.port must be 1-65535, not {self.port}")
        if self.max_body_bytes < 1024:
            raise ValueError("crmkit.api.max_body_bytes must be at least 1024")
        if self.form_max_field_chars < 1:
            raise ValueError("crmkit.api.form_max_field_chars must be positive")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(
                    f"crmkit.api.trusted_proxies: {proxy!r} is not an IP address or network"
                    " (e.g. 10.0.0.5 or 10.0.0.0/8)"
                ) from None
        if self.form_rate_limit < 1 or self.form_rate_window_seconds <= 0:
            raise ValueError(
                "crmkit.api.form_rate_limit and form_rate_window_seconds must be positive"
            )

    @property
    def base_url(self) -> str:
        """``public_url``, or the address the server listens on."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


@frozen
class DeskSettings:
    """The web desk (served by ``crmkit serve`` under ``/desk``): how long a sign-in lasts,
    how many wrong passwords lock a user out and for how long, the shortest password an
    administrator may set, whether cookies are sent over HTTPS only, and the UI language of
    users who have not chosen one (``zh_CN`` or ``en``)."""

    session_hours: float = 12.0
    max_failed_sign_ins: int = 5
    lockout_minutes: float = 15.0
    min_password_length: int = 10
    secure_cookies: bool = False  # true behind HTTPS: the browser sends cookies over HTTPS only
    default_locale: str = "zh_CN"

    def __attrs_post_init__(self) -> None:
        if self.session_hours <= 0 or self.lockout_minutes <= 0:
            raise ValueError("crmkit.desk.session_hours and lockout_minutes must be positive")
        if self.max_failed_sign_ins < 1:
            raise ValueError("crmkit.desk.max_failed_sign_ins must be at least 1")
        if self.min_password_length < 8:
            raise ValueError("crmkit.desk.min_password_length must be at least 8")
        if not isinstance(self.secure_cookies, bool):
            raise ValueError(
                f"crmkit.desk.secure_cookies must be true or false, not {self.secure_cookies!r}"
            )
        if self.default_locale not in ("zh_CN", "en"):
            raise ValueError(
                f"crmkit.desk.default_locale must be zh_CN or en, not {self.default_locale!r}"
            )


@frozen
class EmailSettings:
    """The SMTP server the e-mail channel sends through (``[crmkit.email]``).

    ``security`` is ``none`` (plain, the default for a local relay), ``starttls`` or ``tls``
    (implicit TLS, usually port 465). ``connections`` is how many SMTP connections one worker
    keeps open at once while sending a batch."""

    host: str = "localhost"
    port: int = 25
    username: str = ""
    password: str = ""
    security: str = "none"
    from_address: str = "crm@localhost"
    from_name: str = ""
    timeout_seconds: float = 30.0
    connections: int = 4

    def __attrs_post_init__(self) -> None:
        if self.security not in ("none", "starttls", "tls"):
            raise ValueError(
                f"crmkit.email.security must be none, starttls or tls, not {self.security!r}"
            )
        if not 0 < self.port < 65536:
            raise ValueError(f"crmkit.email.port must be 1-65535, not {self.port}")
        if not 1 <= self.connections <= 64:
            raise ValueError(f"crmkit.email.connections must be 1-64, not {self.connections}")
        if "@" not in self.from_address:
            raise ValueError(
                f"crmkit.email.from_address must be an e-mail address, not {self.from_address!r}"
            )


@frozen
class MessageSettings:
    """How messages are delivered (``[crmkit.messages]``).

    * ``secret``: signs one-click unsubscribe links (set it: the default is for development);
    * ``catch_up_seconds``: a message due longer ago than this when a worker gets to it (after
      downtime) is logged ``late`` and not sent; one due less long ago is sent and flagged late;
    * ``max_attempts``, ``backoff_seconds``, ``max_backoff_seconds``: retries of a failed send
      (exponential backoff), then ``dead`` (``crmkit messages retry`` sends it again);
    * ``lease_seconds``: how long a worker may hold a claimed message before another takes it;
    * ``batch_size``: messages one worker claims at a time;
    * ``admin_alert_channels``: the channels admins get sensitive-operation alerts on
      (``inapp`` always works; ``email`` uses each admin's e-mail address);
    * ``webhook_secret``: signs webhook-channel requests (``X-Crmkit-Signature``)."""

    secret: str = "crmkit-development-secret"
    catch_up_seconds: float = 86_400.0
    max_attempts: int = 6
    backoff_seconds: float = 30.0
    max_backoff_seconds: float = 3600.0
    lease_seconds: float = 300.0
    batch_size: int = 500
    admin_alert_channels: tuple[str, ...] = field(default=("inapp",), converter=tuple)
    webhook_secret: str = ""

    def __attrs_post_init__(self) -> None:
        if self.max_attempts < 1 or self.batch_size < 1:
            raise ValueError("crmkit.messages.max_attempts and batch_size must be at least 1")
        if self.catch_up_seconds < 0 or self.lease_seconds <= 0 or self.backoff_seconds < 0:
            raise ValueError(
                "crmkit.messages.catch_up_seconds, lease_seconds and backoff_seconds must not"
                " be negative"
            )
        if not self.secret:
            raise ValueError("crmkit.messages.secret must not be empty")


@frozen
class Settings:
    """Everything configurable about one CRM instance."""

    database_url: str = DEFAULT_DATABASE_URL
    default_region: str = "CN"
    config_path: Path | None = None
    custom_fields: tuple[CustomField, ...] = ()
    webhooks: tuple[WebhookConfig, ...] = ()
    relay: RelaySettings = RelaySettings()
    api: ApiSettings = ApiSettings()
    desk: DeskSettings = DeskSettings()
    plugins: Mapping[str, Mapping[str, Any]] = field(factory=dict)
    echo_sql: bool = False
    assignment: AssignmentSettings = field(factory=AssignmentSettings)
    email: EmailSettings = EmailSettings()
    messages: MessageSettings = MessageSettings()

    @classmethod
    def load(cls, path: str | Path | None = None, *, database_url: str | None = None) -> Settings:
        """Read the config file (if any) and the environment.

        An explicitly named file that does not exist is an error; the default
        ``./crmkit.toml`` may be absent (then the built-in defaults apply).
        """
        explicit = path or os.environ.get("CRMKIT_CONFIG")
        config_path = Path(explicit) if explicit else Path(DEFAULT_CONFIG_NAME)
        data: dict[str, Any] = {}
        if config_path.exists():
            try:
                data = tomllib.loads(config_path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as error:
                raise ConfigError(f"{config_path}: not valid TOML: {error}") from None
            except UnicodeDecodeError:
                raise ConfigError(
                    f"{config_path}: not a config file (not UTF-8 text; crmkit.toml is TOML)"
                ) from None
            except OSError as error:
                raise ConfigError(f"cannot read {config_path}: {error.strerror}") from None
        elif explicit:
            raise ConfigError(
                f"config file {config_path} does not exist: create it with"
                f" 'crmkit --config {config_path} init'"
            )
        else:
            config_path = None  # type: ignore[assignment]
        return cls.from_mapping(
            data,
            config_path=config_path,
            database_url=database_url or os.environ.get("CRMKIT_DATABASE_URL"),
        )

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, Any],
        *,
        config_path: Path | None = None,
        database_url: str | None = None,
    ) -> Settings:
        """Build settings from parsed TOML, naming the key of any bad value."""
        where = str(config_path or "settings")
        unknown_tables = sorted(set(data) - {"crmkit", "plugins", "webhooks"})
        if unknown_tables:
            raise ConfigError(
                f"{where}: unknown table [{unknown_tables[0]}]; crmkit reads [crmkit],"
                " [plugins.<name>] and [[webhooks]]"
            )
        section = dict(data.get("crmkit", {}))
        known = {
            "database_url",
            "default_region",
            "echo_sql",
            "custom_fields",
            "relay",
            "api",
            "desk",
            "assignment",
            "pool",
            "email",
            "messages",
        }
        unknown = sorted(set(section) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown setting crmkit.{unknown[0]}")
        url = database_url or section.get("database_url") or DEFAULT_DATABASE_URL
        url = resolve_sqlite_path(str(url), config_path)
        try:
            custom_fields = tuple(
                CustomField(**{**spec, "source": "config"})
                for spec in section.get("custom_fields", [])
            )
            webhooks = tuple(WebhookConfig(**spec) for spec in data.get("webhooks", []))
            relay = RelaySettings(**section.get("relay", {}))
            api = ApiSettings(**section.get("api", {}))
            desk = DeskSettings(**section.get("desk", {}))
            email = EmailSettings(**section.get("email", {}))
            messages = MessageSettings(**section.get("messages", {}))
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{where}: {error}") from None
        assignment = AssignmentSettings.from_mapping(
            section.get("assignment", {}), section.get("pool", {}), where
        )
        region = str(section.get("default_region", "CN")).upper()
        if not phonenumbers.country_code_for_region(region):
            raise ConfigError(
                f"{where}: crmkit.default_region {region!r} is not a phone region:"
                " use an ISO country code such as CN, TW, HK or US"
            )
        echo_sql = section.get("echo_sql", False)
        if not isinstance(echo_sql, bool):
            raise ConfigError(f"{where}: crmkit.echo_sql must be true or false, not {echo_sql!r}")
        return cls(
            database_url=url,
            default_region=region,
            config_path=config_path,
            custom_fields=custom_fields,
            webhooks=webhooks,
            relay=relay,
            api=api,
            desk=desk,
            plugins={name: dict(values) for name, values in data.get("plugins", {}).items()},
            echo_sql=echo_sql,
            assignment=assignment,
            email=email,
            messages=messages,
        )

    def plugin_settings(self, plugin: str, specs: Sequence[SettingSpec]) -> dict[str, Any]:
        """The validated settings of ``plugin``, defaults filled in, unknown keys refused."""
        raw = dict(self.plugins.get(plugin, {}))
        by_name = {spec.name: spec for spec in specs}
        unknown = sorted(set(raw) - set(by_name))
        if unknown:
            raise ConfigError(f"unknown setting plugins.{plugin}.{unknown[0]}")
        result: dict[str, Any] = {}
        for spec in specs:
            if spec.name in raw:
                result[spec.name] = spec.check(plugin, raw[spec.name])
            elif spec.required:
                raise ConfigError(f"setting plugins.{plugin}.{spec.name} is required")
            else:
                result[spec.name] = spec.default
        return result


def write_config(path: Path, database_url: str, default_region: str = "CN") -> None:
    """Write a fresh config file; refuses to overwrite an existing one."""
    if path.exists():
        raise ConfigError(f"{path} already exists; edit it or choose another --config path")
    document = {
        "crmkit": {
            "database_url": database_url,
            "default_region": default_region,
            "custom_fields": [],
        },
        "plugins": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(document), encoding="utf-8")
