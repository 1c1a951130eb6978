"""Where state outlives the process: a JSON file for `replay --state`, SQLite for the daemon."""

from bot.store.jsonfile import StoreError, load_lifetime, save_lifetime

__all__ = ["StoreError", "load_lifetime", "save_lifetime"]
