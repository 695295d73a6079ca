"""robots.txt as search engines read it (RFC 9309), parsed by protego.

Python's ``urllib.robotparser`` ignores the ``*`` and ``$`` wildcards and
takes the first matching rule instead of the longest, so ``Allow: /a/b``
after ``Disallow: /a`` loses there; protego implements the RFC's matching.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from protego import Protego


@dataclass(frozen=True)
class RobotsRules:
    """What one origin's robots.txt allows; ``unreachable`` set: it could not be read."""

    parser: Optional[Protego] = None
    unreachable: Optional[str] = None  # why; RFC 9309 2.3.1.4: then fetch nothing

    @classmethod
    def parse(cls, body: bytes) -> "RobotsRules":
        return cls(parser=Protego.parse(body.decode("utf-8", errors="replace")))

    def allows(self, url: str, user_agent: str) -> bool:
        """Tell whether ``url`` may be fetched; always False when robots.txt was unreachable."""
        if self.unreachable is not None:
            return False
        return self.parser is None or bool(self.parser.can_fetch(url, user_agent))

    def crawl_delay(self, user_agent: str) -> Optional[float]:
        delay = self.parser.crawl_delay(user_agent) if self.parser is not None else None
        return float(delay) if delay is not None else None
