"""What readers could not find: questions and votes recorded in KB_DATA_DIR/bot.sqlite (bot/records.py), the
one-time import of an old feedback.jsonl, and the curators' report (`python -m bot gaps`, bot/gaps.py), fed
through Discord, Slack and the console."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fake_discord import (
    FakeDiscord,
    answer_id_of,
    button_payload,
    click,
    command_payload,
    run_command,
    start_client,
)
from fake_slack import answer_id, mention, serve
from rich.console import Console

from bot.chat import ChatCore
from bot.console import ConsoleChat
from bot.gaps import find_gaps, gaps_text, normalise, similarity
from bot.records import DB_FILE, Records, asker_hash
from bot.settings import BotSettings
from knowledge import KnowledgeBase, tokenize

EPOCH = datetime.fromtimestamp(0, UTC)
ROOT = Path(__file__).resolve().parents[1]

OLD_FEEDBACK = [
    {"time": "2026-01-05T10:00:00+00:00", "platform": "discord", "user": "discord:1", "question": "contrastive learning", "entry_ids": ["a1", "a2"], "vote": "down"},
    {"time": "2026-01-06T11:30:00+00:00", "platform": "slack", "user": "slack:U1", "question": "adam weight decay", "entry_ids": ["b1"], "vote": "up"},
    {"time": "2026-01-07T09:15:00", "platform": "slack", "user": "slack:U2", "question": "Contrastive learning?", "entry_ids": ["a1"], "vote": "down"},
]  # fmt: skip


# -- the records ------------------------------------------------------------------------------------------


def test_records_live_in_their_own_tables_of_bot_sqlite_in_wal_mode(tmp_path: Path) -> None:
    records = Records(tmp_path / DB_FILE)
    records.add_question("discord", "discord:1", "speech contrastive learning", "refused")
    records.add_question("slack", "slack:U1", "attention", "answered", entry_ids=["e1", "e2"])
    records.add_question("slack", "slack:U1", "arXiv:2401.00001", "missing", subject="arXiv:2401.00001")
    records.add_vote("console", "console", "attention", "down", [("e1", "Attention Is All You Need")])
    # Another module's tables in the same file (as bot/state.py keeps its state_* tables) are left alone.
    with sqlite3.connect(tmp_path / DB_FILE) as db:
        db.execute("CREATE TABLE state_example (key TEXT PRIMARY KEY)")
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"records_meta", "records_questions", "records_votes", "state_example"}
        assert db.execute("PRAGMA user_version").fetchone() == (0,)  # the file's: not ours to take
        askers = {row[0] for row in db.execute("SELECT asker FROM records_questions")}
    assert askers == {asker_hash("discord:1"), asker_hash("slack:U1")} and "slack:U1" not in askers

    again = Records(tmp_path / DB_FILE)  # another process, later
    activity = again.activity(EPOCH)
    assert (activity.answered, activity.refused, activity.up, activity.down) == (1, 2, 0, 1)
    assert [(q.question, q.outcome) for q in again.unanswered(EPOCH)] == [
        ("speech contrastive learning", "refused"),
        ("arXiv:2401.00001", "missing"),
    ]
    (vote,) = again.votes(EPOCH, "down")
    assert vote.entries == (("e1", "Attention Is All You Need"),) and vote.user == "console"
    assert again.activity(datetime.now(UTC) + timedelta(minutes=1)).answered == 0


def test_writers_in_threads_at_once_lose_nothing(tmp_path: Path) -> None:
    records = Records(tmp_path / DB_FILE)

    def write(number: int) -> None:
        for at in range(25):
            records.add_question("slack", f"u{number}", f"question {number}-{at}", "refused")

    threads = [threading.Thread(target=write, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert records.activity(EPOCH).refused == 200


def test_the_first_write_waits_for_another_connection_that_holds_a_fresh_file(tmp_path: Path) -> None:
    # SQLite fails `PRAGMA journal_mode = WAL` at once, without its busy handler, while another
    # connection holds a write lock on a file still in rollback mode: the state of a fresh bot.sqlite
    # while another thread or replica sets it up. (CI lost a question to this race once.)
    other = sqlite3.connect(tmp_path / DB_FILE, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE state_example (key TEXT PRIMARY KEY)")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    try:
        Records(tmp_path / DB_FILE).add_question("slack", "u1", "attention", "answered")
    finally:
        release.join()
        other.close()
    assert Records(tmp_path / DB_FILE).activity(EPOCH).answered == 1


def test_an_old_feedback_jsonl_is_imported_once(tmp_path: Path) -> None:
    lines = [json.dumps(row, ensure_ascii=False) for row in OLD_FEEDBACK]
    lines.insert(1, "{not json")  # a torn line, as a crash mid-write leaves
    lines.insert(2, json.dumps({"time": "2026-01-05T10:00:00+00:00", "vote": "sideways"}))
    old = tmp_path / "feedback.jsonl"
    old.write_text("\n".join(lines) + "\n", encoding="utf-8")

    records = Records(tmp_path / DB_FILE)
    votes = records.votes(EPOCH)  # the first use imports it
    assert [(v.question, v.vote, v.platform, v.user) for v in votes] == [
        ("contrastive learning", "down", "discord", "discord:1"),
        ("adam weight decay", "up", "slack", "slack:U1"),
        ("Contrastive learning?", "down", "slack", "slack:U2"),
    ]
    assert votes[0].entries == (("a1", ""), ("a2", "")) and votes[0].time == datetime(2026, 1, 5, 10, tzinfo=UTC)
    assert votes[2].time == datetime(2026, 1, 7, 9, 15, tzinfo=UTC)  # no zone written: UTC
    assert not old.exists() and (tmp_path / "feedback.jsonl.imported").exists()

    # The file comes back (an old replica wrote it, a backup was restored): it is not imported again.
    (tmp_path / "feedback.jsonl.imported").rename(old)
    assert Records(tmp_path / DB_FILE).import_feedback(old) == 0
    assert len(Records(tmp_path / DB_FILE).votes(EPOCH)) == 3


def test_the_import_happens_once_when_two_processes_start_together(tmp_path: Path) -> None:
    (tmp_path / "feedback.jsonl").write_text(
        "\n".join(json.dumps(row) for row in OLD_FEEDBACK * 200) + "\n", encoding="utf-8"
    )
    script = (
        "import sys; from datetime import UTC, datetime; from pathlib import Path; from bot.records import Records; "
        "print(len(Records(Path(sys.argv[1])).votes(datetime.fromtimestamp(0, UTC))))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / DB_FILE)], stdout=subprocess.PIPE, env=env, text=True
        )
        for _ in range(3)
    ]
    counts = [int(process.communicate(timeout=60)[0]) for process in processes]
    assert counts == [600, 600, 600]


# -- grouping ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "together"),
    [
        ("contrastive learning for speech?", "Speech contrastive learning", True),
        ("Contrastive Learning for speech！", "contrastive learning for speech", True),
        ("对比学习的论文", "对比学习论文？", True),
        ("對比學習的論文", "对比学习的论文", True),  # Traditional and Simplified
        ("papers on graph neural networks", "graph neural network paper", True),  # stems
        ("contrastive learning for speech", "contrastive learning for images", False),
        ("best pizza in New York", "how do I bake bread", False),
        ("召回模型", "排序模型", False),
    ],
)
def test_near_identical_wordings_count_together(a: str, b: str, together: bool) -> None:
    tokens_a, tokens_b = frozenset(tokenize(normalise(a))), frozenset(tokenize(normalise(b)))
    assert (similarity(tokens_a, tokens_b) >= 0.6) is together, (tokens_a, tokens_b)


def test_the_report_counts_groups_most_asked_first_with_the_last_time_and_the_voted_down_entries(
    tmp_path: Path,
) -> None:
    records = Records(tmp_path / DB_FILE)
    for user, question in [
        ("a", "speech contrastive learning"),
        ("b", "Contrastive learning for speech?"),
        ("a", "speech contrastive learning"),
        ("g", "Speech contrastive learning"),
        ("c", "what is the best pizza in town"),
    ]:
        records.add_question("slack", user, question, "refused")
    records.add_question("discord", "d", "arXiv:2401.00001", "missing", subject="arXiv:2401.00001")
    records.add_vote("discord", "e", "Contrastive learning for speech", "down", [("e7", "SimCLR"), ("e8", "MoCo")])
    records.add_vote("discord", "f", "attention", "up", [("e1", "Attention")])
    gaps = find_gaps(records.unanswered(EPOCH), records.votes(EPOCH, "down"), tokenize)
    speech, *rest = gaps
    assert (speech.count, speech.refused, speech.down, len(speech.askers)) == (5, 4, 1, 4)
    assert speech.question == "Speech contrastive learning"  # the most frequent wording, as last written
    assert speech.variants == ["Contrastive learning for speech"]  # the other wording, as last written
    assert dict(speech.entries) == {("e7", "SimCLR"): 1, ("e8", "MoCo"): 1}
    assert sorted(gap.question for gap in rest) == ["arXiv:2401.00001", "what is the best pizza in town"]
    assert all(gap.count == 1 for gap in rest)
    text = gaps_text(gaps, EPOCH, sum(gap.count for gap in gaps))
    assert "7 in 3 group(s)" in text
    assert "   5×  Speech contrastive learning\n       last asked " in text
    assert "4 refused, 1 👎, 4 people" in text and "👎 1× on SimCLR (e7)" in text
    assert "papers named: arXiv:2401.00001" in text and "attention" not in text  # 👍 is not a gap


# -- through each front-end --------------------------------------------------------------------------------


async def test_refusals_and_down_votes_from_every_front_end_appear_grouped_in_the_report(
    kb: KnowledgeBase, discord_fake: FakeDiscord, tmp_path: Path
) -> None:
    """The same gap asked on Discord (a slash command), Slack (a mention) and the console, worded three ways,
    and a 👎 on each platform: one group of the report, with its count, its last time and the entries voted down."""
    data = tmp_path / "data"
    settings = BotSettings(
        _env_file=None,
        sources=kb.settings.sources,
        data_dir=data,
        cooldown_seconds=0,
        discord_token="test-token",
        discord_api_url=discord_fake.url,
    )
    discord_core = ChatCore(kb, settings)
    client = await start_client(discord_fake, discord_core)
    try:
        await run_command(client, command_payload("ask", question="How do I bake sourdough bread at home?"))
        await run_command(client, command_payload("ask", question="Which paper fixes weight decay in Adam?"))
        refusal, answer = discord_fake.followups
        assert refusal.content.startswith("I found nothing in the collection")
        click(client, button_payload(f"kb:vote:down:{answer_id_of(answer)}", answer.response))
        await discord_fake.wait_for(lambda r: r.content == "Thanks for the feedback!")
        await discord_core.flush_records()
    finally:
        await client.close()

    async with serve(kb, data) as slack:
        await slack.event(mention("1700003000.000100", "<@UBOT> how to bake sourdough bread at home"))
        _, _, asked = await slack.command("/ask", "Which paper fixes weight decay in Adam?")
        [answered] = await slack.reply_to(asked)
        _, clicked = await slack.action("kb_vote_down", answer_id(answered))
        await slack.reply_to(clicked)
        await slack.fake.wait_for(lambda replies: any("bake" in r.everything for r in replies))
        await slack.core.flush_records()

    out = io.StringIO()
    console_core = ChatCore(kb, settings)
    chat = ConsoleChat(
        console_core,
        stdin=io.StringIO("Sourdough bread: how do I bake it at home?\nwhat is the best pizza in New York\n"),
        console=Console(file=out, width=200, color_system=None),
    )
    await chat.run()
    await console_core.flush_records()
    assert out.getvalue().count("I found nothing in the collection") == 2

    records = Records(data / DB_FILE)
    gaps = find_gaps(records.unanswered(EPOCH), records.votes(EPOCH, "down"), tokenize)
    bread, adam, pizza = gaps
    assert (bread.count, bread.refused, bread.down) == (3, 3, 0)
    assert {q.platform for q in records.unanswered(EPOCH) if "bread" in q.question.lower()} == {
        "discord",
        "slack",
        "console",
    }
    assert bread.last is not None and datetime.now(UTC) - bread.last < timedelta(minutes=5)
    assert (adam.count, adam.down, adam.question) == (2, 2, "Which paper fixes weight decay in Adam?")
    ((entry_id, title), votes), *_ = adam.entries.most_common()
    assert title == "Fixing Weight Decay Regularization in Adam" and votes == 2 and entry_id
    assert (pizza.count, pizza.refused) == (1, 1)
    assert {v.platform for v in records.votes(EPOCH, "down")} == {"discord", "slack"}

    # The report from the command line: the same groups, as text and as JSON.
    env = {key: value for key, value in os.environ.items() if not key.startswith("KB_")}
    env |= {"KB_DATA_DIR": str(data), "KB_CONFIG_DIR": str(tmp_path / "no-config")}
    text = subprocess.run(
        [sys.executable, "-m", "bot", "gaps"], env=env, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert (
        "6 in 3 group(s)" in text
        and "   3×  " in text
        and "👎 2× on Fixing Weight Decay Regularization in Adam" in text
    )
    report = json.loads(
        subprocess.run(
            [sys.executable, "-m", "bot", "gaps", "--since", "1d", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    )
    assert [group["count"] for group in report["groups"]] == [3, 2, 1] and report["total"] == 6
    assert report["groups"][1]["voted_down_entries"][0]["title"] == "Fixing Weight Decay Regularization in Adam"
    assert len(report["groups"][0]["variants"]) == 2 and report["groups"][0]["last_asked"]
    empty = subprocess.run(
        [sys.executable, "-m", "bot", "gaps", "--since", "2000-01-01"],
        env={**env, "KB_DATA_DIR": str(tmp_path / "x")},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert empty.stdout.startswith("No unanswered questions and no 👎 since 2000-01-01")
    assert not (tmp_path / "x").exists()  # the report writes nothing


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--since", "last tuesday"], 2, "expected 30d, 2w, 12h or a date"),
        (["--limit", "-1"], 2, "--limit: expected a whole number from 1, got '-1'"),  # dropped the last group
        ([], 1, "error: cannot read the records in "),  # a damaged file: was a sqlite3 traceback
    ],
)
def test_python_m_bot_gaps_refuses_bad_input_in_one_line(tmp_path: Path, args: list[str], code: int, says: str) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("KB_")} | {
        "KB_DATA_DIR": str(tmp_path)
    }
    (tmp_path / DB_FILE).write_bytes(b"not a database " * 100)
    done = subprocess.run(
        [sys.executable, "-m", "bot", "gaps", *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == code and says in done.stderr and "Traceback" not in done.stderr


async def test_python_m_bot_gaps_imports_an_old_feedback_jsonl(tmp_path: Path) -> None:
    (tmp_path / "feedback.jsonl").write_text(
        "\n".join(json.dumps(row) for row in OLD_FEEDBACK) + "\n", encoding="utf-8"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("KB_")} | {
        "KB_DATA_DIR": str(tmp_path)
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot", "gaps", "--since", "2026-01-01", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    (group,) = json.loads(done.stdout)["groups"]
    assert group["question"] == "Contrastive learning?" and group["voted_down"] == 2
    assert group["voted_down_entries"] == [{"id": "a1", "title": "", "votes": 2}, {"id": "a2", "title": "", "votes": 1}]
