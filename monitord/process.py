"""Start-up shared by the daemon and the notify worker process: read the configuration, set up
logging and the language, and list every problem if the file is bad."""

from __future__ import annotations

import logging
from pathlib import Path

from monitord.config import Config
from monitord.config_loader import ConfigError, load_config
from monitord.i18n import set_language
from monitord.logs import setup_logging

log = logging.getLogger("monitord.daemon")


def configure_process(config_path: str | Path) -> Config | None:
    """The loaded configuration, or None after logging each problem (exit 2)."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        setup_logging()
        for problem in exc.problems:
            log.error("configuration: %s", problem)
        return None
    setup_logging(config.logging.level, config.logging.format)
    set_language(config.language)
    return config
