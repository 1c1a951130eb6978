"""The config file: documented defaults, and every mistake reported as file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Config, ConfigError, load_config


def test_the_example_config_loads_to_the_defaults():
    cfg = load_config("config.example.yaml")
    assert cfg == Config(rules=Path("rules"), jsonl=None)


def test_every_problem_at_once(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("rule: x\nengine:\n  streak_silence: soon\n  dedup_window: many\nsinks:\n  console: yes\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        f"{path}:1:1: unknown key 'rule' (did you mean 'rules'?)",
        f"{path}:3:19: bad duration 'soon': use a number with ms, s, m, h or d, e.g. 90s, 10m, 1h30m",
        f"{path}:4:17: 'dedup_window' must be a whole number",
        f"{path}:6:12: 'console' must be true or false",
    ]


def test_paths_are_relative_to_the_config_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("rules: my-rules\nsinks:\n  jsonl: out/actions.jsonl\nengine:\n  streak_silence: 3s\n")
    cfg = load_config(path)
    assert (cfg.rules, cfg.jsonl, cfg.streak_silence_ms) == (tmp_path / "my-rules", tmp_path / "out/actions.jsonl", 3000)


def test_the_example_documents_every_key():
    import yaml

    from bot.config import SCHEMA

    doc = yaml.safe_load(open("config.example.yaml", encoding="utf-8"))

    def walk(schema, section, prefix):
        for key, spec in schema.items():
            assert key in section, f"config.example.yaml lacks '{prefix}{key}'"
            if isinstance(spec, dict):
                walk(spec, section[key], f"{prefix}{key}.")

    walk(SCHEMA, doc, "")


def test_secrets_come_from_the_environment_and_never_show(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("source:\n  type: webhook\n")
    cfg = load_config(path, env={"LIVEBOT_WEBHOOK_SECRET": "s3cret", "SIGN_API_KEY": "k3y"})
    assert cfg.source.webhook.secret == "s3cret" and cfg.source.tiktok.sign_api_key == "k3y"
    shown = repr(cfg.redacted())
    assert "s3cret" not in shown and "k3y" not in shown and "***" in shown


def test_webhook_sinks_are_checked_and_their_secrets_hidden(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("sinks:\n  webhooks:\n    - url: http://127.0.0.1:9/a\n      secret: sh\n"
                    "    - url: http://127.0.0.1:9/b\n      name: second\n      max_batch: 20\n      timeout: 2s\n")
    cfg = load_config(path, env={})
    assert [(w.name, w.max_batch, w.timeout_ms) for w in cfg.webhooks] == [("webhook1", 1, 5000), ("second", 20, 2000)]
    assert "sh" not in repr(cfg.redacted()["webhooks"])
    path.write_text("sinks:\n  webhooks:\n    - urll: http://x\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.problems == [f"{path}:3:7: sinks.webhooks[0]: unknown key 'urll' (did you mean 'url'?)"]
    path.write_text("sinks:\n  webhooks:\n    - url: http://x\n      secrett: s\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.problems == [f"{path}:4:7: sinks.webhooks[0]: unknown key 'secrett' (did you mean 'secret'?)"]


def test_every_unknown_key_of_sinks_webhooks_gets_a_did_you_mean_at_its_place(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("sinks:\n  webhooks:\n    - {url: 'http://x', nmae: a, secert: s}\n    - urll: http://y\n")
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert info.value.problems == [
        f"{f}:3:25: sinks.webhooks[0]: unknown key 'nmae' (did you mean 'name'?)",
        f"{f}:3:34: sinks.webhooks[0]: unknown key 'secert' (did you mean 'secret'?)",
        f"{f}:4:7: sinks.webhooks[1]: unknown key 'urll' (did you mean 'url'?)",
    ]


def test_a_latin1_config_names_the_line(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_bytes(b"room_id: x\nrules: r\xe9gles\n")
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert info.value.problems == [f"{f}:2:9: not UTF-8 text: byte 0xe9 cannot be read (save the file as UTF-8)"]
