/* livebot overlay: shows what the bot's overlay server pushes over a WebSocket.
 *
 * Viewer text (nicknames, comments) only ever reaches the page as text: textContent and
 * createElement, never innerHTML. URL options:
 *   ?theme=NAME        add static/themes/NAME.css        ?tts=0        never speak
 *   ?voice=NAME        a speech voice whose name contains NAME          ?lang=en-US
 *   ?alert_ms=6000     how long an alert stays (big gifts longer)      ?max_alerts=3
 *   ?retry_max_ms=10000  the longest wait between reconnection attempts
 *   ?sounds=0          never play sound alerts
 */
(() => {
  "use strict";

  const params = new URLSearchParams(location.search);
  const flag = (name, fallback) =>
    params.has(name) ? !/^(0|off|false|no)$/i.test(params.get(name)) : fallback;
  const number = (name, fallback) => {
    const value = Number(params.get(name));
    return params.has(name) && Number.isFinite(value) && value >= 0 ? value : fallback;
  };
  const options = {
    tts: flag("tts", true),
    voice: (params.get("voice") || "").toLowerCase(),
    lang: params.get("lang") || "",
    alertMs: number("alert_ms", 6000),
    maxAlerts: Math.max(1, number("max_alerts", 3)),
    retryMaxMs: Math.max(250, number("retry_max_ms", 10000)),
    sounds: flag("sounds", true),
  };
  const root = document.documentElement;
  const $ = (id) => document.getElementById(id);
  const fmt = new Intl.NumberFormat();

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // A shipped theme, by plain name only; user.css stays last so the user's rules win.
  const theme = params.get("theme");
  if (theme && /^[a-z0-9_-]{1,40}$/.test(theme)) {
    const link = el("link");
    link.rel = "stylesheet";
    link.href = "static/themes/" + theme + ".css";
    $("user-css").before(link);
    root.dataset.theme = theme;
  }

  // -- alerts and shout-outs ---------------------------------------------------------------------

  const TIER_TIME = { legendary: 2, big: 1.5 };

  function showAlert(m) {
    const box = el("div", "alert kind-" + (m.kind || "alert") + (m.tier ? " tier-" + m.tier : ""));
    box.append(el("div", "text", m.text));
    const list = $("alerts");
    list.prepend(box);
    while (list.children.length > options.maxAlerts) list.lastElementChild.remove();
    setTimeout(() => {
      box.classList.add("leaving");
      setTimeout(() => box.remove(), 600);
    }, options.alertMs * (TIER_TIME[m.tier] || 1));
  }

  // -- call-to-action banner ---------------------------------------------------------------------

  let bannerTimer = 0;

  function showBanner(m) {
    clearTimeout(bannerTimer);
    const banner = $("banner");
    if (!m || !m.text) {
      banner.hidden = true;
      return;
    }
    banner.querySelector(".text").textContent = m.text;
    banner.hidden = false;
    if (m.ms > 0) bannerTimer = setTimeout(() => { banner.hidden = true; }, m.ms);
  }

  // -- poll --------------------------------------------------------------------------------------

  let pollEnds = null; // performance.now() when the open poll ends
  let resultTimer = 0;

  function renderOptions(poll, opts, total, winners) {
    const list = poll.querySelector(".options");
    while (list.children.length > opts.length) list.lastElementChild.remove();
    opts.forEach((option, i) => {
      let row = list.children[i];
      if (!row) { // rows are reused so the bars animate from their old width
        row = el("div", "option");
        const bar = el("div", "bar");
        bar.append(el("div", "fill"));
        row.append(el("span", "num"), el("span", "name"), el("span", "votes"), bar);
        list.append(row);
      }
      row.querySelector(".num").textContent = String(i + 1);
      row.querySelector(".name").textContent = option.name;
      row.querySelector(".votes").textContent = fmt.format(option.votes);
      row.querySelector(".fill").style.width = (total ? (100 * option.votes) / total : 0) + "%";
      row.dataset.votes = String(option.votes);
      row.classList.toggle("winner", winners.includes(option.name));
    });
    poll.querySelector(".total").textContent = total === 1 ? "1 vote" : fmt.format(total) + " votes";
  }

  function showPoll(m) {
    clearTimeout(resultTimer);
    const poll = $("poll");
    if (!m) {
      poll.hidden = true;
      pollEnds = null;
      return;
    }
    poll.classList.remove("closed");
    poll.querySelector(".question").textContent = m.question;
    poll.querySelector(".result").textContent = "";
    renderOptions(poll, m.options, m.total, []);
    pollEnds = m.remaining_ms === null || m.remaining_ms === undefined ? null : performance.now() + m.remaining_ms;
    poll.hidden = false;
    tick();
  }

  function showResult(m) {
    clearTimeout(resultTimer);
    const poll = $("poll");
    pollEnds = null;
    poll.querySelector(".question").textContent = m.question;
    renderOptions(poll, m.options, m.total, m.winners || []);
    poll.querySelector(".result").textContent = m.text;
    poll.querySelector(".timer").textContent = "";
    poll.classList.add("closed");
    poll.hidden = false;
    resultTimer = setTimeout(() => { poll.hidden = true; }, m.ms || 15000);
  }

  function tick() {
    if (pollEnds === null) return;
    const left = Math.max(0, Math.ceil((pollEnds - performance.now()) / 1000));
    $("poll").querySelector(".timer").textContent =
      Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
  }
  setInterval(tick, 250);

  // -- top gifters -------------------------------------------------------------------------------

  function showBoard(m) {
    const board = $("board");
    const rows = ((m && m.top) || []).map((g) => {
      const row = el("li", "gifter rank-" + Number(g.rank));
      row.append(el("span", "rank", g.rank), el("span", "name", g.nickname),
        el("span", "diamonds", fmt.format(g.diamonds)));
      return row;
    });
    board.querySelector(".gifters").replaceChildren(...rows);
    board.hidden = rows.length === 0;
  }

  // -- text to speech ----------------------------------------------------------------------------

  function speak(m) {
    if (!options.tts || !m.text || !("speechSynthesis" in window)) return;
    const utterance = new SpeechSynthesisUtterance(m.text);
    const lang = typeof m.lang === "string" && m.lang ? m.lang : options.lang; // the viewer's, else ?lang=
    if (lang) utterance.lang = lang;
    const wanted = (typeof m.voice === "string" && m.voice ? m.voice : options.voice).toLowerCase();
    if (wanted) {
      const voice = speechSynthesis.getVoices().find((v) => v.name.toLowerCase().includes(wanted));
      if (voice) utterance.voice = voice;
    }
    speechSynthesis.speak(utterance);
  }

  // -- goals: one animated bar each (rows are kept, so the fill slides to its new width) ------------

  const goalRows = new Map(); // goal id → its row

  function showGoal(m) {
    if (!m || typeof m.id !== "string") return;
    const box = $("goals");
    let row = goalRows.get(m.id);
    if (!row) {
      row = el("div", "goal");
      const head = el("div", "head");
      head.append(el("span", "title"), el("span", "count"));
      const bar = el("div", "bar");
      bar.append(el("div", "fill"));
      row.append(head, bar);
      box.append(row);
      goalRows.set(m.id, row);
    }
    const target = typeof m.target === "number" ? m.target : null;
    row.querySelector(".title").textContent = m.title;
    row.querySelector(".count").textContent =
      fmt.format(m.progress) + (target === null ? " ✓" : " / " + fmt.format(target));
    const share = target === null ? 1 : target > 0 ? Math.min(1, m.progress / target) : 0;
    row.querySelector(".fill").style.width = (100 * share).toFixed(2) + "%";
    row.dataset.progress = String(m.progress);
    row.dataset.target = target === null ? "" : String(target);
    row.classList.toggle("done", !!m.done);
    if (typeof m.reached === "number") { // a step reached: flash (restart the animation)
      row.classList.remove("reached");
      void row.offsetWidth;
      row.classList.add("reached");
    }
    box.hidden = false;
  }

  function showGoals(list) {
    goalRows.clear();
    $("goals").replaceChildren();
    $("goals").hidden = true;
    (list || []).forEach(showGoal);
  }

  // -- the subathon clock: counts down here between the server's updates --------------------------

  let timerEnds = null; // performance.now() when it reaches zero, while running
  let timerLeft = 0;

  function clockText(ms) {
    const s = Math.max(0, Math.ceil(ms / 1000));
    const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = s % 60;
    const mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(sec).padStart(2, "0");
  }

  function showTimer(m) {
    const box = $("timer");
    if (!m) {
      box.hidden = true;
      timerEnds = null;
      return;
    }
    timerLeft = Math.max(0, Number(m.remaining_ms) || 0);
    timerEnds = m.paused || m.ended ? null : performance.now() + timerLeft;
    box.classList.toggle("paused", !!m.paused);
    box.classList.toggle("ended", !!m.ended);
    box.hidden = false;
    tickTimer();
  }

  function tickTimer() {
    const box = $("timer");
    if (box.hidden) return;
    const left = timerEnds === null ? timerLeft : Math.max(0, timerEnds - performance.now());
    box.querySelector(".clock").textContent = clockText(left);
    box.dataset.remaining = String(Math.ceil(left / 1000));
  }
  setInterval(tickTimer, 250);

  // -- sound alerts: one at a time, a short queue (the server already limited them) ---------------

  const SOUND_QUEUE = 5;
  const soundQueue = [];
  let soundPlaying = false;

  function playSound(m) {
    if (!options.sounds || typeof m.src !== "string" || !m.src.startsWith("sounds/")) return;
    if (soundQueue.length >= SOUND_QUEUE) return; // a burst beyond the queue is dropped, not delayed
    soundQueue.push(m);
    if (!soundPlaying) nextSound();
  }

  function nextSound() {
    const m = soundQueue.shift();
    if (!m) {
      soundPlaying = false;
      return;
    }
    soundPlaying = true;
    const audio = new Audio(m.src);
    audio.volume = Math.min(1, Math.max(0, Number(m.volume) || 0));
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      nextSound();
    };
    audio.addEventListener("ended", finish);
    audio.addEventListener("error", finish);
    setTimeout(finish, 30000); // a file that never ends (or never loads) does not block the rest
    const played = audio.play();
    if (played && played.catch) played.catch(finish); // e.g. autoplay not allowed: see the README
  }

  // -- the credits roll: scrolls up once over the screen, then goes --------------------------------

  let creditsTimer = 0;

  function showCredits(m) {
    const box = $("credits");
    const roll = el("div", "roll");
    roll.append(el("h1", "title", m.title));
    let lines = 2;
    (m.sections || []).forEach((section) => {
      const part = el("section", "part");
      part.append(el("h2", "heading", section.title));
      (section.names || []).forEach((name) => part.append(el("p", "name", name)));
      roll.append(part);
      lines += 2 + (section.names || []).length;
    });
    const seconds = Math.min(180, 8 + lines * 0.7);
    roll.style.animationDuration = seconds + "s";
    box.replaceChildren(roll);
    box.hidden = false;
    clearTimeout(creditsTimer);
    creditsTimer = setTimeout(() => { box.hidden = true; }, seconds * 1000 + 500);
  }

  // -- messages and the connection ---------------------------------------------------------------

  const handlers = {
    alert: showAlert,
    banner: showBanner,
    poll: showPoll,
    poll_result: showResult,
    board: showBoard,
    tts: speak,
    goal: showGoal,
    timer: showTimer,
    credits: showCredits,
    sound: playSound,
    state(m) { // what is true now, after a (re)connect
      showPoll(m.poll);
      showBoard(m.board);
      showBanner(m.banner);
      showGoals(m.goals);
      showTimer(m.timer);
    },
    batch(m) { m.items.forEach(handle); },
  };

  function handle(m) {
    const handler = m && handlers[m.t];
    if (!handler) return;
    try {
      handler(m);
    } catch (err) { // one odd message must not stop the ones after it
      console.error("overlay: cannot show", m.t, err);
    }
  }

  let attempt = 0;
  let connects = 0;

  function connect() {
    const url = new URL("ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.search = "";
    root.dataset.ws = "connecting";
    const ws = new WebSocket(url);
    ws.onopen = () => {
      attempt = 0;
      root.dataset.ws = "open";
      root.dataset.connects = String(++connects);
    };
    ws.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      handle(message);
    };
    ws.onclose = () => {
      root.dataset.ws = "closed";
      // Back off: 0.5 s, 1 s, 2 s ... up to retry_max_ms, with jitter so pages do not stampede.
      const delay = Math.min(options.retryMaxMs, 500 * 2 ** Math.min(attempt++, 10));
      setTimeout(connect, delay * (0.75 + Math.random() * 0.25));
    };
  }

  connect();
})();
