"""Every append-only file of ours (recording, journal, JSONL actions, dead letters, ingest spill)
goes on after a kill's cut line without gluing the next line to it."""

from __future__ import annotations

import orjson

from bot.actions.delivery import DeadLetter
from bot.actions.model import Action
from bot.appendfile import end_cut_line
from bot.sinks.jsonl import JsonlSink


def test_a_cut_line_is_ended_once_and_whole_files_are_left_alone(tmp_path):
    cut, whole, empty = tmp_path / "cut", tmp_path / "whole", tmp_path / "empty"
    cut.write_bytes(b'{"a":1}\n{"b":')
    whole.write_bytes(b'{"a":1}\n')
    empty.write_bytes(b"")
    assert end_cut_line(cut) and not end_cut_line(cut)
    assert cut.read_bytes() == b'{"a":1}\n{"b":\n'
    assert not end_cut_line(whole) and whole.read_bytes() == b'{"a":1}\n'
    assert not end_cut_line(empty) and not end_cut_line(tmp_path / "missing") and not end_cut_line(tmp_path)


async def test_the_jsonl_sink_and_the_dead_letter_file_go_on_after_a_cut_line(tmp_path):
    action = Action(1, "say", "thanks ana", "thanks", "ana", "m1")
    out, dead = tmp_path / "actions.jsonl", tmp_path / "dead.jsonl"
    out.write_bytes(orjson.dumps(action.to_dict()) + b"\n" + b'{"ts":2,"ki')
    dead.write_bytes(b'{"at":1,"si')
    sink = JsonlSink(out, append=True)
    await sink.send([action])
    await sink.close()
    letters = DeadLetter(dead)
    assert letters.write("webhook", [action], reason="failed", error="503", attempts=3)
    letters.close()
    for path in (out, dead):
        lines = path.read_bytes().splitlines()
        assert orjson.loads(lines[-1])  # the new line is whole
        assert lines[-2].endswith((b'"ki', b'"si'))  # the cut one is a line of its own
