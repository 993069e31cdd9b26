"""URLs without the share and tracking parameters that notes copy along, as replies show them and as
entries and pasted links are matched on (`knowledge.normalize.url_key`).

A note copied from a phone carries what the app added when it was shared: WeChat's `chksm`, `scene` and the
sharer's `pass_ticket`, Xiaohongshu's `shareRedId` and `apptime`, `utm_*` everywhere. They make the link
long, some identify the person who shared it, and the same article pasted from another share would not
match the entry. Only parameters known to be tracking are dropped, per host
where a name is too common to drop everywhere; anything else (an article's id, Xiaohongshu's `xsec_token`,
without which the note does not open) stays, in its order.
"""

from __future__ import annotations

from urllib.parse import unquote_plus, urlsplit, urlunsplit

# Dropped on every host: names no page needs to show its content.
_EVERYWHERE = frozenset({"fbclid", "gclid", "igshid", "spm_id_from", "vd_source", "share_source", "share_medium"})
# Dropped on one host (and its subdomains): names that elsewhere may carry meaning.
_PER_HOST = {
    "xiaohongshu.com": frozenset(
        {
            "app_platform",
            "app_version",
            "share_from_user_hidden",
            "author_share",
            "xhsshare",
            "shareRedId",
            "apptime",
            "share_id",
        }
    ),
    "baijiahao.baidu.com": frozenset({"wfr", "for"}),
    "linkedin.com": frozenset({"trk", "trackingId"}),
}
_WECHAT = "mp.weixin.qq.com"
# An article's link, long form (`/s?__biz=…&mid=…&idx=…&sn=…`) or short (`/s/<id>`), needs only these; the
# rest says who shared it, how and when (`chksm`, `scene`, the sharer's `pass_ticket`, `poc_token`, …).
_WECHAT_ARTICLE = frozenset({"__biz", "mid", "idx", "sn"})
# Elsewhere on WeChat (an album: `/mp/appmsgalbum?__biz=…&album_id=…`), only what is known to be a share's.
_PER_HOST[_WECHAT] = frozenset(
    {
        "chksm",
        "scene",
        "subscene",
        "pass_ticket",
        "poc_token",
        "xtrack",
        "srcid",
        "mpshare",
        "sharer_shareinfo",
        "sharer_shareinfo_first",
        "sharer_sharetime",
        "sharer_shareid",
        "clicktime",
        "enterid",
        "exptype",
        "ascene",
        "devicetype",
        "nettype",
        "isappinstalled",
        "sessionid",
        "exportkey",
        "key",
        "uin",
    }
)
_WECHAT_FRAGMENTS = frozenset({"rd", "wechat_redirect"})


def _host_rule(host: str) -> frozenset[str]:
    return next(
        (names for domain, names in _PER_HOST.items() if host == domain or host.endswith("." + domain)), frozenset()
    )


def without_tracking(url: str) -> str:
    """`url` without known share and tracking parameters (and WeChat's `#rd`, `#wechat_redirect`); a URL
    that does not parse, or has nothing to drop, comes back as it was."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return url
    wechat = host == _WECHAT
    if not parts.query and not (wechat and parts.fragment in _WECHAT_FRAGMENTS):
        return url
    # The query is filtered as written, a `name=value` piece at a time, so what stays keeps its encoding.
    pieces = [piece for piece in parts.query.split("&") if piece]
    fragment = "" if wechat and parts.fragment in _WECHAT_FRAGMENTS else parts.fragment
    names = [_name(piece) for piece in pieces]
    if wechat and (parts.path.startswith("/s/") or (parts.path == "/s" and "__biz" in names)):
        kept = [piece for piece, name in zip(pieces, names, strict=True) if name in _WECHAT_ARTICLE]
    else:
        local = _host_rule(host)
        kept = [piece for piece, name in zip(pieces, names, strict=True) if not _tracking(name, local)]
    if len(kept) == len(pieces) and fragment == parts.fragment:
        return url
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(kept), fragment))


def _name(piece: str) -> str:
    return unquote_plus(piece.partition("=")[0])


def _tracking(name: str, local: frozenset[str]) -> bool:
    return name.startswith("utm_") or name in _EVERYWHERE or name in local
