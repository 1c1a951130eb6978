"""OBS Studio through obs-websocket v5, against a local server written from the protocol document
(tests/obs_server.py): the v5 handshake with its auth challenge, each rule kind, OBS's refusals,
a wrong password refused with 4009, an unreachable OBS."""

from __future__ import annotations

import json
import socket

import pytest
import websockets

from bot.actions.delivery import PermanentSinkError
from bot.actions.model import Action
from bot.integrations.base import AuthFailed, IntegrationDown, IntegrationRefused
from bot.integrations.obs import ObsSink
from bot.integrations.text import MAX_TEXT
from obs_server import ObsServer, auth_string


def act(kind: str, text: str = "", **data) -> Action:
    return Action(ts=0, kind=kind, text=text, rule="r", data=data)


async def test_each_kind_changes_obs_after_a_v5_handshake_with_a_password():
    async with ObsServer(password="hunter2") as obs:
        sink = ObsSink(obs.url, password="hunter2", timeout_s=5)
        await sink.send([act("obs_scene", scene="Gift Cam")])
        assert obs.program == "Gift Cam" and obs.identified == 1
        await sink.send([act("obs_source", source="Confetti", scene="Main")])
        assert obs.enabled("Main", "Confetti")
        await sink.send([act("obs_source", source="Airhorn", visible=True)])  # the program scene
        assert obs.enabled("Gift Cam", "Airhorn")
        await sink.send([act("obs_source", source="Confetti", scene="Main", visible="false")])
        assert not obs.enabled("Main", "Confetti")
        await sink.send([act("obs_text", "ana sent 5× Rose", source="Last Gift")])
        assert obs.inputs["Last Gift"]["settings"]["text"] == "ana sent 5× Rose"
        await sink.send([act("obs_media", source="Airhorn")])
        assert obs.media == [("Airhorn", "OBS_WEBSOCKET_MEDIA_INPUT_ACTION_RESTART")]
        assert obs.identified == 1  # one connection for all of it
        await sink.close()


async def test_a_wrong_password_is_refused_with_4009_and_dead_lettered_at_once():
    async with ObsServer(password="right") as obs:
        sink = ObsSink(obs.url, password="wrong", timeout_s=5)
        with pytest.raises(AuthFailed, match="4009"):
            await sink.connect()
        assert obs.refused == 1 and obs.identified == 0
        with pytest.raises(PermanentSinkError):  # the dispatcher dead-letters it at once
            await ObsSink(obs.url, password="wrong", timeout_s=5).send([act("obs_scene", scene="Main")])
        nopass = ObsSink(obs.url, timeout_s=5)
        with pytest.raises(AuthFailed, match="needs a password"):
            await nopass.connect()
        assert "wrong" not in repr(sink) and "right" not in repr(sink)


async def test_what_obs_refuses_is_permanent_and_names_the_status():
    async with ObsServer() as obs:
        sink = ObsSink(obs.url, timeout_s=5)
        with pytest.raises(IntegrationRefused, match="SetCurrentProgramScene \\(status 600"):
            await sink.send([act("obs_scene", scene="No Such Scene")])
        await sink.connect()
        with pytest.raises(IntegrationRefused, match="status 204"):
            await sink.call("MakeCoffee")
        with pytest.raises(IntegrationRefused, match="needs data.source"):
            await sink.send([act("obs_text", "x")])
        await sink.send([act("obs_scene", scene="Gift Cam")])  # the connection survived all that
        assert obs.program == "Gift Cam"
        await sink.close()


async def test_the_local_server_follows_the_document_for_a_plain_json_client():
    """The fake itself, driven by hand in JSON: the auth string from the document's recipe, an
    unknown request type (204), a request before Identify (closed with 4007)."""
    async with ObsServer(password="pw") as obs:
        async with websockets.connect(obs.url, subprotocols=["obswebsocket.json"]) as ws:
            hello = json.loads(await ws.recv())
            assert hello["op"] == 0 and hello["d"]["rpcVersion"] == 1
            a = hello["d"]["authentication"]
            await ws.send(json.dumps({"op": 1, "d": {"rpcVersion": 1,
                                                     "authentication": auth_string("pw", a["salt"], a["challenge"])}}))
            assert json.loads(await ws.recv()) == {"op": 2, "d": {"negotiatedRpcVersion": 1}}
            await ws.send(json.dumps({"op": 6, "d": {"requestType": "Nope", "requestId": "1"}}))
            reply = json.loads(await ws.recv())
            assert reply["op"] == 7 and reply["d"]["requestStatus"]["code"] == 204
        async with websockets.connect(obs.url, subprotocols=["obswebsocket.json"]) as ws:
            await ws.recv()
            await ws.send(json.dumps({"op": 6, "d": {"requestType": "GetVersion", "requestId": "1"}}))
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 4007


async def test_check_sees_scenes_inputs_and_sources():
    async with ObsServer(password="pw") as obs:
        probe = await ObsSink(obs.url, password="pw", timeout_s=5).probe()
        assert probe.ok and probe.saw["scenes"] == ["Gift Cam", "Main"]
        assert "Last Gift" in probe.saw["inputs"]
        assert probe.detail["scene_items"]["Gift Cam"] == ["Camera", "Airhorn"]
        bad = await ObsSink(obs.url, password="no", timeout_s=5).probe()
        assert bad.reachable and not bad.authenticated and "4009" in (bad.error or "")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_an_unreachable_obs_is_a_warning_at_start_and_retried_with_backoff():
    now = [0.0]
    sink = ObsSink(f"ws://127.0.0.1:{_closed_port()}", timeout_s=5, backoff_base_s=2, clock=lambda: now[0])
    await sink.start()  # a warning, not a crash
    assert not sink.connected and sink.counters["connect_failures"] == 1
    with pytest.raises(IntegrationDown, match="next try in"):  # within the backoff: no new attempt
        await sink.send([act("obs_scene", scene="Main")])
    assert sink.counters["connect_failures"] == 1
    now[0] += 10
    with pytest.raises(IntegrationDown, match="cannot connect"):
        await sink.send([act("obs_scene", scene="Main")])
    assert sink.counters["connect_failures"] == 2


async def test_a_wrong_password_stays_permanent_during_the_backoff():
    async with ObsServer(password="right") as obs:
        sink = ObsSink(obs.url, password="wrong", timeout_s=5, backoff_base_s=60)
        for _ in range(3):
            with pytest.raises(AuthFailed):
                await sink.send([act("obs_scene", scene="Main")])
        assert obs.refused == 1  # one knock; the rest refused from memory until the backoff is over


async def test_a_closed_or_doubtful_connection_is_opened_again():
    now = [0.0]
    async with ObsServer(password="pw") as obs:
        sink = ObsSink(obs.url, password="pw", timeout_s=10, backoff_base_s=1, clock=lambda: now[0])
        await sink.send([act("obs_scene", scene="Gift Cam")])
        await obs.drop_all()  # OBS restarts mid-stream
        await until(lambda: not sink._alive())
        await sink.send([act("obs_scene", scene="Main")])  # seen closed: opened again at once
        assert obs.program == "Main" and obs.identified == 2
        obs.hang = True  # now a request that never gets an answer: the connection is in doubt
        sink.timeout = 0.3
        with pytest.raises(IntegrationDown, match="timed out"):
            await sink.send([act("obs_scene", scene="Gift Cam")])
        obs.hang, sink.timeout = False, 10
        await sink.send([act("obs_scene", scene="Gift Cam")])  # the dispatcher's retry: a new connection
        assert obs.program == "Gift Cam" and obs.identified == 3
        await sink.close()


async def until(check) -> None:
    import asyncio

    async with asyncio.timeout(30):
        while not check():
            await asyncio.sleep(0.005)


async def test_viewer_text_reaches_a_text_source_filtered():
    nasty = "ana\u202e" + "\x1b[31m" + "evil\u2066\x00 sent\nRose\t" + "x" * 3000
    async with ObsServer() as obs:
        sink = ObsSink(obs.url, timeout_s=5)
        await sink.send([act("obs_text", nasty, source="Last Gift")])
        shown = obs.inputs["Last Gift"]["settings"]["text"]
        assert shown.startswith("ana[31mevil sent\nRose ") and len(shown) == MAX_TEXT
        assert shown.endswith("…") and not any(c in shown for c in "\u202e\u2066\x1b\x00\t")
        await sink.close()
