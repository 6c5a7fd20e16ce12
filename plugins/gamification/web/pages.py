"""The chat pages as server-rendered HTML: semantic, keyboard-friendly, themed by Telegram.

Every user-supplied string (names, titles, reasons) passes through `escape` on its way in;
links keep the viewer's Mini App sign-in (`auth`) so each page is one request.
"""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

from plugins.gamification.domain.models import Period
from plugins.gamification.services.web_pages import CHART_DAYS, AuditLine, Board, Profile
from plugins.gamification.web.chart import points_chart
from plugins.gamification.web.texts import text

PERIODS = (Period.DAY, Period.WEEK, Period.MONTH, Period.ALL)

STYLE = """
:root{color-scheme:light dark;--bg:var(--tg-theme-bg-color,#fff);
--fg:var(--tg-theme-text-color,#16181d);--hint:var(--tg-theme-hint-color,#6b7280);
--link:var(--tg-theme-link-color,#1d64c8);--accent:var(--tg-theme-button-color,#2f7fd8);
--accent-fg:var(--tg-theme-button-text-color,#fff);
--card:var(--tg-theme-secondary-bg-color,#f2f4f7);--loss:#c0392b}
@media (prefers-color-scheme:dark){:root:not(.tg){--bg:#15181e;--fg:#e8eaed;--hint:#9aa0a6;
--link:#7ab4ff;--accent:#4a90e2;--card:#20252d;--loss:#ff7b6b}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif}
main{max-width:44rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem;margin:.25rem 0 1rem;overflow-wrap:anywhere}
h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
a{color:var(--link)}
a:focus-visible,button:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.skip{position:absolute;left:-100vw}.skip:focus{left:1rem;top:1rem;background:var(--bg);
padding:.5rem;z-index:1}
nav ul{display:flex;flex-wrap:wrap;gap:.5rem;list-style:none;padding:0;margin:0 0 1rem}
nav a{display:inline-block;padding:.35rem .8rem;border-radius:999px;background:var(--card);
text-decoration:none;color:var(--fg)}
nav a[aria-current=page]{background:var(--accent);color:var(--accent-fg)}
table{width:100%;border-collapse:collapse}
caption{text-align:left;color:var(--hint);padding-bottom:.5rem}
th,td{padding:.45rem .5rem;text-align:left;border-bottom:1px solid var(--card)}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.name{overflow-wrap:anywhere}
tr.me td{background:var(--card)}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.35rem 1rem;margin:0}
dt{color:var(--hint)}dd{margin:0}
progress{width:100%;max-width:16rem;accent-color:var(--accent)}
ul.achievements{padding-left:1.2rem}
.hint{color:var(--hint)}.when{white-space:nowrap}
figure{margin:0}figcaption{color:var(--hint);font-size:.9rem}
.chart text{fill:var(--hint);font-size:11px}
.chart .grid{stroke:var(--card)}.chart .zero{stroke:var(--hint)}
.chart .gain{fill:var(--accent)}.chart .loss{fill:var(--loss)}
.chart .empty{font-size:14px}
"""

# Telegram hands a Mini App its theme in the URL fragment on launch; it is kept for the
# session's later pages. Only colour values are applied.
THEME_SCRIPT = """
(function(){var t=new URLSearchParams(location.hash.slice(1)).get("tgWebAppThemeParams");
try{if(t){sessionStorage.setItem("tgTheme",t)}else{t=sessionStorage.getItem("tgTheme")}}
catch(e){}if(!t)return;var o;try{o=JSON.parse(t)}catch(e){return}
var r=document.documentElement;r.classList.add("tg");for(var k in o){
if(/^[a-z_]+$/.test(k)&&/^#[0-9a-fA-F]{3,8}$/.test(o[k])){
r.style.setProperty("--tg-theme-"+k.replace(/_/g,"-"),o[k])}}})();
"""

# The Mini App's entry: Telegram puts the signed launch data in the fragment, which only a
# script can read; it is sent on to the server, which checks it and opens the chat's page.
APP_SCRIPT = """
(function(){var h=new URLSearchParams(location.hash.slice(1));var d=h.get("tgWebAppData");
if(!d){document.getElementById("status").textContent=document.getElementById("status")
.dataset.outside;return}var q=new URLSearchParams(location.search);var p=new URLSearchParams();
p.set("auth",d);var c=q.get("chat");if(c){p.set("chat",c)}
location.replace(location.pathname.replace(/\\/$/,"")+"/open?"+p.toString())})();
"""


def link(path: str, auth: str | None, **query: str) -> str:
    """An escaped href: `path` with the query, and the viewer's sign-in when they have one."""
    params = dict(query)
    if auth:
        params["auth"] = auth
    return escape(path + ("?" + urlencode(params) if params else ""))


def document(lang: str, title: str, body: str, *, script: str = "") -> str:
    return (
        f'<!DOCTYPE html><html lang="{escape(lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{escape(title)}</title><style>{STYLE}</style>"
        f"<script>{THEME_SCRIPT}</script></head><body>"
        f'<a class="skip" href="#content">{escape(text(lang, "skip"))}</a>'
        f'<main id="content">{body}</main>'
        + (f"<script>{script}</script>" if script else "")
        + "</body></html>"
    )


def board_page(
    lang: str,
    board: Board,
    *,
    prefix: str,
    auth: str | None,
    viewer: int | None,
    admin: bool,
) -> str:
    base = f"{prefix}/c/{board.chat_id}"
    tabs = []
    for period in PERIODS:
        current = ' aria-current="page"' if period is board.period else ""
        href = link(base, auth, period=period.value)
        tabs.append(f'<li><a href="{href}"{current}>{escape(text(lang, "period_" + period))}</a>')
    title = text(lang, "title_board")
    parts = [
        f"<h1>{escape(title)}</h1>",
        f'<nav aria-label="{escape(text(lang, "periods"))}"><ul>{"".join(tabs)}</ul></nav>',
    ]
    if board.lines:
        rows = []
        for line in board.lines:
            mine = ' class="me"' if line.user_id == viewer else ""
            href = link(f"{base}/u/{line.user_id}", auth)
            rows.append(
                f'<tr{mine}><td class="num">{line.rank}</td>'
                f'<td class="name"><a href="{href}">{escape(line.name)}</a></td>'
                f'<td class="num">{line.points}</td></tr>'
            )
        parts.append(
            f"<table><caption>{escape(text(lang, 'period_' + board.period))}</caption>"
            f'<thead><tr><th scope="col" class="num">{escape(text(lang, "rank"))}</th>'
            f'<th scope="col">{escape(text(lang, "member"))}</th>'
            f'<th scope="col" class="num">{escape(text(lang, "points"))}</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
    else:
        parts.append(f'<p class="hint">{escape(text(lang, "nobody"))}</p>')
    if admin:
        href = link(f"{base}/admin", auth)
        parts.append(f'<p><a href="{href}">{escape(text(lang, "audit_link"))}</a></p>')
    return document(lang, title, "".join(parts))


def profile_page(lang: str, profile: Profile, *, prefix: str, auth: str | None) -> str:
    base = f"{prefix}/c/{profile.chat_id}"
    rank = f"#{profile.rank}" if profile.rank else text(lang, "no_rank")
    span = max(profile.next_level_at - profile.level_at, 1)
    done = min(max(profile.earned - profile.level_at, 0), span)
    left = max(profile.next_level_at - profile.earned, 0)
    level = (
        f'{profile.level} <progress max="{span}" value="{done}"'
        f' aria-label="{escape(text(lang, "level_progress", left=left, next=profile.level + 1))}">'
        f'</progress> <span class="hint">'
        f"{escape(text(lang, 'level_progress', left=left, next=profile.level + 1))}</span>"
    )
    facts = [
        ("balance", f"<strong>{profile.balance}</strong>"),
        ("earned", str(profile.earned)),
        ("rank", escape(rank)),
        ("level", level),
        ("streak", escape(text(lang, "days", n=profile.streak, best=profile.best_streak))),
    ]
    dl = "".join(f"<dt>{escape(text(lang, key))}</dt><dd>{value}</dd>" for key, value in facts)
    if profile.achievements:
        items = "".join(
            f"<li><strong>{escape(a.title)}</strong>"
            + (f": {escape(a.description)}" if a.description else "")
            + f' <span class="hint when">{escape(a.at[:10])}</span></li>'
            for a in profile.achievements
        )
        achievements = f'<ul class="achievements">{items}</ul>'
    else:
        achievements = f'<p class="hint">{escape(text(lang, "no_achievements"))}</p>'
    caption = text(lang, "chart", days=CHART_DAYS)
    chart = points_chart(
        profile.series, label=caption, empty=text(lang, "chart_empty", days=CHART_DAYS)
    )
    body = (
        f'<p><a href="{link(base, auth)}">{escape(text(lang, "back"))}</a></p>'
        f"<h1>{escape(profile.name)}</h1><dl>{dl}</dl>"
        f"<h2>{escape(text(lang, 'achievements'))}</h2>{achievements}"
        f"<h2>{escape(caption)}</h2><figure>{chart}</figure>"
    )
    return document(lang, profile.name, body)


def audit_page(
    lang: str, chat_id: int, lines: list[AuditLine], *, prefix: str, auth: str | None
) -> str:
    title = text(lang, "title_audit")
    base = f"{prefix}/c/{chat_id}"
    body = [
        f'<p><a href="{link(base, auth)}">{escape(text(lang, "back"))}</a></p>',
        f"<h1>{escape(title)}</h1>",
    ]
    if lines:
        heads = "".join(
            f'<th scope="col">{escape(text(lang, key))}</th>'
            for key in ("audit_when", "audit_who", "audit_what", "audit_whom", "audit_detail")
        )
        rows = "".join(
            f"<tr><td>{escape(line.at[:16].replace('T', ' '))}</td><td>{escape(line.actor)}</td>"
            f"<td>{escape(line.action)}</td><td>{escape(line.target)}</td>"
            f"<td>{escape(line.detail)}</td></tr>"
            for line in lines
        )
        body.append(f"<table><thead><tr>{heads}</tr></thead><tbody>{rows}</tbody></table>")
    else:
        body.append(f'<p class="hint">{escape(text(lang, "audit_none"))}</p>')
    return document(lang, title, "".join(body))


def error_page(lang: str, status: int, *, admin_only: bool = False) -> str:
    title = text(lang, f"error_{status}")
    key = "error_403_admin_text" if admin_only else f"error_{status}_text"
    return document(lang, title, f"<h1>{escape(title)}</h1><p>{escape(text(lang, key))}</p>")


def app_page(lang: str) -> str:
    body = (
        f"<h1>{escape(text(lang, 'app_title'))}</h1>"
        f'<p id="status" role="status" data-outside="{escape(text(lang, "app_outside"))}">'
        f"{escape(text(lang, 'app_opening'))}</p>"
    )
    return document(lang, text(lang, "app_title"), body, script=APP_SCRIPT)
