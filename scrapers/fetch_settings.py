"""The limits and manners of one ``Fetcher``, read from ``SCRAPER_*`` config keys."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Union

_CONFIG_KEYS = {
    "user_agent": "SCRAPER_USER_AGENT",
    "connect_timeout": "SCRAPER_CONNECT_TIMEOUT",
    "read_timeout": "SCRAPER_TIMEOUT",
    "total_timeout": "SCRAPER_TOTAL_TIMEOUT",
    "max_bytes": "SCRAPER_MAX_BYTES",
    "retries": "SCRAPER_RETRIES",
    "max_retry_after": "SCRAPER_MAX_RETRY_AFTER",
    "host_concurrency": "SCRAPER_HOST_CONCURRENCY",
    "min_interval": "SCRAPER_MIN_INTERVAL",
    "max_crawl_delay": "SCRAPER_MAX_CRAWL_DELAY",
    "allowed_hosts": "SCRAPER_ALLOWED_HOSTS",
}


def host_list(value: Union[str, Iterable[str], None]) -> tuple[str, ...]:
    """Read an allow-list: a comma- or space-separated string (environment) or a list."""
    if value is None:
        return ()
    items = value.replace(",", " ").split() if isinstance(value, str) else value
    return tuple(item.strip() for item in items if item and item.strip())


@dataclass(frozen=True)
class FetchSettings:
    """Limits and manners for one ``Fetcher``."""

    user_agent: str = "Bonusvergleich-Scraper/0.1 (compares loyalty programme earn rates)"
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0  # budget for one get(): connect, headers, body, retries, redirects
    max_bytes: int = 10 * 1024 * 1024  # decoded bytes of one response
    retries: int = 3
    backoff_factor: float = 0.5
    max_retry_after: float = 30.0  # a longer Retry-After fails the request at once instead of sleeping
    host_concurrency: int = 2  # max requests in flight per host
    min_interval: float = 0.5  # min seconds between request starts to one host
    max_crawl_delay: float = 30.0  # a longer robots.txt Crawl-delay is cut to this
    max_redirects: int = 5
    allowed_hosts: tuple[str, ...] = ()  # "host" or "host:port" exempt from the address guard

    def __post_init__(self) -> None:
        if self.host_concurrency < 1:
            raise ValueError("host_concurrency must be at least 1")
        if min(self.connect_timeout, self.read_timeout, self.total_timeout) <= 0:
            raise ValueError("timeouts must be positive")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "FetchSettings":
        """Build settings from ``SCRAPER_*`` config keys; missing keys keep the defaults."""
        values: dict[str, Any] = {}
        for setting in dataclasses.fields(cls):
            key = _CONFIG_KEYS.get(setting.name)
            if key is None or config.get(key) is None:
                continue
            if setting.name == "allowed_hosts":
                values[setting.name] = host_list(config[key])
            else:
                # Values may come from the environment as strings: cast to the default's type.
                values[setting.name] = type(setting.default)(config[key])
        return cls(**values)

    def allowing(self, *hosts: str) -> "FetchSettings":
        """These settings with ``hosts`` (``host:port``) added to the allow-list."""
        return dataclasses.replace(self, allowed_hosts=self.allowed_hosts + host_list(list(hosts)))
